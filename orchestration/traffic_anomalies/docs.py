"""`traffic-anomalies docs`: generate the dbt docs site and serve it on 127.0.0.1.

`dbt docs generate` writes index.html, manifest.json and catalog.json into target/; the page
reads the two JSON files over HTTP, so it needs a web server (a file:// URL does not work).
We serve target/ ourselves, on the loopback interface only, without directory listings.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from traffic_anomalies import PROJECT_DIR

DEFAULT_PORT = 8080
DEFAULT_HOST = "127.0.0.1"
DOCS_FILES = ("index.html", "manifest.json", "catalog.json")
# selectors.yml: every node but the tests, as the nightly's GenerateDocs step compiles them.
DOCS_SELECTOR = "nightly_docs"


def default_target_path() -> Path:
    return PROJECT_DIR / "target"


def generate_docs(
    target_path: Path | None = None,
    *,
    dbt_vars: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    """Run `dbt docs generate` (against the database in PG*/TA_SCHEMA); return the target dir."""
    from traffic_anomalies import localdb
    from traffic_anomalies.dbt import run_dbt

    localdb.apply_connection_env()
    target_path = Path(target_path or default_target_path()).resolve()
    run_dbt(("docs", "generate", "--selector", DOCS_SELECTOR), target_path=target_path, dbt_vars=dbt_vars,
            env=env, require_nodes=False)
    missing = [name for name in DOCS_FILES if not (target_path / name).exists()]
    if missing:
        raise RuntimeError(f"dbt docs generate did not write {', '.join(missing)} into {target_path}")
    return target_path


class _DocsHandler(http.server.SimpleHTTPRequestHandler):
    """Static files of one directory; no directory listings, no request log on stderr."""

    def list_directory(self, path):  # noqa: ANN001 - signature of the base class
        self.send_error(404, "No directory listings")
        return None

    def end_headers(self) -> None:
        # The site is regenerated in place: never let the browser keep a stale manifest.
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        if os.environ.get("TA_DOCS_ACCESS_LOG"):
            super().log_message(format, *args)


def make_server(directory: Path, port: int = DEFAULT_PORT, host: str = DEFAULT_HOST) -> http.server.ThreadingHTTPServer:
    """A server for `directory` bound to host:port (port 0: any free port; see server_address)."""
    handler = functools.partial(_DocsHandler, directory=str(Path(directory).resolve()))
    server = http.server.ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve_in_thread(directory: Path, port: int = 0, host: str = DEFAULT_HOST) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Start serving in a daemon thread; return the server (call .shutdown()) and its base URL."""
    server = make_server(directory, port, host)
    threading.Thread(target=server.serve_forever, name="docs-server", daemon=True).start()
    bound_host, bound_port = server.server_address[:2]
    return server, f"http://{bound_host}:{bound_port}/"


def serve(directory: Path, port: int = DEFAULT_PORT, host: str = DEFAULT_HOST) -> None:
    """Serve until interrupted."""
    server = make_server(directory, port, host)
    bound_host, bound_port = server.server_address[:2]
    print(f"docs: serving {directory} on http://{bound_host}:{bound_port}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _command(args: argparse.Namespace) -> int:
    from traffic_anomalies.dbt import DbtError

    from traffic_anomalies import localdb

    target = Path(args.target_path) if args.target_path else default_target_path()
    try:
        localdb.up()  # fail fast, with libpq's reason, when the database does not answer
        target = generate_docs(target)
    except (DbtError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"docs: generated {target / 'index.html'}")
    if args.no_serve:
        return 0
    try:
        serve(target, args.port, args.host)
    except OSError as exc:
        print(f"error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "docs",
        help="generate the dbt docs site (dbt docs generate) and serve it on 127.0.0.1",
        description="Generate the dbt docs site into target/ and serve it on http://127.0.0.1:PORT/.",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to serve on (default {DEFAULT_PORT})")
    parser.add_argument("--no-serve", action="store_true", help="only generate the site")
    parser.add_argument(
        "--host", default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}; 0.0.0.0 only inside a container whose port is published to 127.0.0.1)",
    )
    parser.add_argument("--target-path", default=None, help="where dbt writes the site (default: target/ of the project)")
    parser.set_defaults(func=_command)
    return parser
