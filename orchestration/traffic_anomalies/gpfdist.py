"""`traffic-anomalies gpfdist up | down | status | config | reader`: gpfdist over a lake, with
the project's transforms (Greenplum reads the lake through it; see docs/greenplum.md).

The transform configuration is written here, never edited by hand: each transform runs the
project's lake reader on one file (the script that macros/lake/lake_programs.sql renders, the
same awk program file_fdw runs on PostgreSQL, written beside the configuration), and its
SAFE regex admits exactly the locations the staging macros request. gpfdist applies SAFE to the
request path as it resolves it (`<lake root>/<dataset>/dt=*/*`, glob included), not to each
file the glob expands to; it passes each expanded file name to the reader as one argument.
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from traffic_anomalies import PROJECT_DIR
from traffic_anomalies.macro_text import lake_reader_script

# transform name (in the external tables' LOCATION, see macros/lake) -> lake_reader.sh mode
TRANSFORMS = {"ta_lines": "lines", "ta_listing": "listing", "ta_line_counts": "line_counts"}
# What the macros request under the lake root: <dataset dir>/dt=*/* (the listing) or
# <dataset dir>/dt=YYYY-MM-DD/* (one day). Every directory name starts with a letter, digit or
# underscore: no `..`, no hidden directories.
LOCATION_REGEX = r"/([A-Za-z0-9_][A-Za-z0-9_.-]*/)+dt=([*]|[0-9]{4}-[0-9]{2}-[0-9]{2})/[*]$"
DEFAULT_PORT = 8081


class GpfdistError(RuntimeError):
    """gpfdist cannot be started or found; the message says why."""


def _ere_escape(text: str) -> str:
    """`text` matched literally in a POSIX extended regular expression."""
    return re.sub(r"([\\.\[\](){}*+?|^$])", r"\\\1", text)


def _yaml_quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def safe_regex(lake: Path) -> str:
    return "^" + _ere_escape(str(lake)) + LOCATION_REGEX


def transform_config(lake: Path, reader: Path) -> str:
    """gpfdist's YAML configuration of the project's transforms for a lake root."""
    lines = [
        "# Written by `traffic-anomalies gpfdist` for the lake " + str(lake) + "; do not edit:",
        "# each transform runs the project's line reader on one file (%filename%).",
        "---",
        "VERSION: 1.0.0.1",
        "TRANSFORMATIONS:",
    ]
    for name, mode in TRANSFORMS.items():
        command = f"/bin/sh {shlex.quote(str(reader))} {mode} %filename%"
        lines += [
            f"  {name}:",
            "    TYPE: input",
            "    CONTENT: data",
            f"    COMMAND: {_yaml_quoted(command)}",
            f"    SAFE: {_yaml_quoted(safe_regex(lake))}",
            "    STDERR: server",
        ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Instance:
    """One gpfdist of ours: its files live in `<state root>/<port>/`."""

    port: int
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "transforms.yaml"

    @property
    def log(self) -> Path:
        return self.root / "gpfdist.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "gpfdist.pid"

    @property
    def lake_file(self) -> Path:
        return self.root / "lake"

    def pid(self) -> int | None:
        """The recorded process if it is still a gpfdist, else None."""
        try:
            pid = int(self.pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        return pid if cmdline and cmdline[0].endswith(b"gpfdist") else None

    def lake(self) -> str:
        return self.lake_file.read_text() if self.lake_file.exists() else "?"


def instance(port: int) -> Instance:
    state = Path(os.environ.get("TA_GPFDIST_DIR", PROJECT_DIR / ".local" / "gpfdist")).resolve()
    return Instance(port=port, root=state / str(port))


def find_gpfdist(given: str | None = None) -> str:
    if given and not os.access(given, os.X_OK):
        raise GpfdistError(f"--gpfdist {given}: not an executable file")
    candidates = [given, os.environ.get("TA_GPFDIST"),
                  os.path.join(os.environ["GPHOME"], "bin", "gpfdist") if os.environ.get("GPHOME") else None,
                  shutil.which("gpfdist")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise GpfdistError("gpfdist not found: give --gpfdist PATH (or set GPHOME, or put it on PATH); "
                       "it ships with Greenplum in $GPHOME/bin")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", port))
        except OSError:
            return False
    return True


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def url(port: int, host: str | None = None) -> str:
    return f"gpfdist://{host or socket.gethostname()}:{port}"


def up(lake: Path, port: int = DEFAULT_PORT, *, user: str | None = None, gpfdist: str | None = None,
       host: str | None = None, timeout: float = 15) -> str:
    """Start gpfdist over `lake` on `port` (or find it running there); gives its gpfdist_url."""
    lake = Path(lake).resolve()
    if not (lake / "flows").is_dir():
        raise GpfdistError(f"{lake} is not a lake root (no flows/ directory in it)")
    inst = instance(port)
    if inst.pid() is not None:
        if inst.lake() != str(lake):
            raise GpfdistError(f"gpfdist on port {port} already serves {inst.lake()}: "
                               f"`traffic-anomalies gpfdist down --port {port}` first")
        return url(port, host)
    if os.geteuid() == 0 and user is None:
        raise GpfdistError("as root, say which user gpfdist (and the lake reader it runs) runs as: "
                           "--user NAME, a user that can read the lake")
    account = pwd.getpwnam(user) if user else None
    if not _port_free(port):
        raise GpfdistError(f"port {port} is already in use")
    binary = find_gpfdist(gpfdist)
    inst.root.mkdir(parents=True, exist_ok=True)
    # the reader is written beside the configuration from the macros that file_fdw runs too
    # (gpfdist's user may not reach the checkout)
    reader = inst.root / "lake_reader.sh"
    reader.write_text(lake_reader_script())
    reader.chmod(0o755)
    inst.config.write_text(transform_config(lake, reader))
    inst.lake_file.write_text(str(lake))
    inst.log.touch()
    if account is not None:
        for path in (inst.root, inst.log):
            os.chown(path, account.pw_uid, account.pw_gid)
    command = [binary, "-d", str(lake), "-p", str(port), "-c", str(inst.config), "-l", str(inst.log)]
    try:
        process = subprocess.Popen(
            command, cwd=inst.root, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
            **({"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []} if account else {}))
    except OSError as exc:
        raise GpfdistError(f"cannot start {binary}: {exc}") from exc
    inst.pid_file.write_text(str(process.pid))
    deadline = time.monotonic() + timeout
    while not _answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
            inst.pid_file.unlink(missing_ok=True)
            tail = inst.log.read_text(errors="replace")[-1500:]
            raise GpfdistError(f"gpfdist did not start on port {port} (exit {process.poll()}); {inst.log}:\n{tail}")
        time.sleep(0.1)
    return url(port, host)


def down(port: int = DEFAULT_PORT, timeout: float = 10) -> str:
    inst = instance(port)
    pid = inst.pid()
    if pid is None:
        inst.pid_file.unlink(missing_ok=True)
        return f"no gpfdist of ours on port {port}"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.05)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)
        _reap(pid)
    inst.pid_file.unlink(missing_ok=True)
    return f"gpfdist on port {port} stopped"


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)  # our own child when up() ran in this process
    except ChildProcessError:
        pass


def status(port: int = DEFAULT_PORT) -> tuple[bool, str]:
    inst = instance(port)
    if inst.pid() is None:
        return False, f"no gpfdist of ours on port {port}"
    return True, f"gpfdist on port {port} (pid {inst.pid()}) serves {inst.lake()}; log {inst.log}"


def _command(args: argparse.Namespace) -> int:
    try:
        if args.action == "up":
            if args.lake is None:
                raise GpfdistError("gpfdist up needs --lake DIR (the lake root, holding flows/)")
            print(up(Path(args.lake), args.port, user=args.user, gpfdist=args.gpfdist, host=args.host))
        elif args.action == "down":
            print(down(args.port))
        elif args.action == "status":
            ok, message = status(args.port)
            print(message)
            return 0 if ok else 3
        elif args.action == "config":
            if args.lake is None:
                raise GpfdistError("gpfdist config needs --lake DIR (the lake root as gpfdist's host sees it)")
            if args.reader is None:
                raise GpfdistError("gpfdist config needs --reader PATH: where `traffic-anomalies gpfdist reader > PATH` "
                                   "put the lake reader on gpfdist's host")
            sys.stdout.write(transform_config(Path(args.lake), Path(args.reader)))
        elif args.action == "reader":
            sys.stdout.write(lake_reader_script())
    except (GpfdistError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "gpfdist", help="gpfdist over a lake for Greenplum: up | down | status | config | reader",
        description="Start or stop gpfdist with the project's transforms (the lake reader) for a lake; "
                    "`up` prints the gpfdist_url to pass as --var gpfdist_url=…; `config` prints the "
                    "transform configuration, and `reader` the lake reader script its transforms run, for a gpfdist "
                    "started some other way.")
    parser.add_argument("action", choices=["up", "down", "status", "config", "reader"])
    parser.add_argument("--lake", help="lake root (the directory holding flows/)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--user", help="run gpfdist as this user (required as root): one that can read the lake")
    parser.add_argument("--host", help="host name in the printed gpfdist_url, as the segments reach it "
                                       "(default: this machine's name)")
    parser.add_argument("--gpfdist", help="the gpfdist binary (default: $TA_GPFDIST, $GPHOME/bin/gpfdist, PATH)")
    parser.add_argument("--reader", help="config: path of the lake reader (the output of `gpfdist reader`) "
                                         "on gpfdist's host")
    parser.set_defaults(func=_command)
