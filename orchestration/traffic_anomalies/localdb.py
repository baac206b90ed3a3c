"""The database the project talks to.

When the usual libpq variables (PGHOST, PGPORT, PGDATABASE, PGUSER, PGSERVICE) name a
database, that one is used and never started or stopped by us. Otherwise the project runs a
throwaway PostgreSQL cluster of its own under `.local/pg/` (own port, socket and database),
started from the machine's server binaries; as root on Debian it installs them when missing.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from traffic_anomalies import PROJECT_DIR

PG_VARIABLES = ("PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")
DEFAULT_PORT = 55433
DEFAULT_DATABASE = "traffic_anomalies"
DEFAULT_USER = "traffic_anomalies"


class DatabaseError(RuntimeError):
    """A database that cannot be reached, started or installed; the message says what to do."""


@dataclass(frozen=True)
class LocalCluster:
    """The project's own cluster: everything lives under `root`."""

    root: Path
    port: int = DEFAULT_PORT

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        # Unix socket paths are limited to ~107 bytes: a deep checkout gets a short one in /tmp.
        own = self.root / "run"
        if len(str(own / f".s.PGSQL.{self.port}")) < 100:
            return own
        digest = hashlib.sha1(str(self.root).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"traffic_anomalies-{digest}"

    @property
    def log_file(self) -> Path:
        return self.root / "log" / "postgresql.log"

    def env(self) -> dict[str, str]:
        return {
            "PGHOST": str(self.socket_dir),
            "PGPORT": str(self.port),
            "PGUSER": DEFAULT_USER,
            "PGDATABASE": DEFAULT_DATABASE,
        }


def local_cluster() -> LocalCluster:
    root = Path(os.environ.get("TA_LOCAL_PG_DIR", PROJECT_DIR / ".local" / "pg")).resolve()
    if os.environ.get("TA_LOCAL_PG_PORT"):
        return LocalCluster(root=root, port=int(os.environ["TA_LOCAL_PG_PORT"]))
    # The port chosen when the cluster was created (another checkout may hold the default).
    port_file = root / "port"
    port = int(port_file.read_text()) if port_file.exists() else DEFAULT_PORT
    return LocalCluster(root=root, port=port)


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _choose_port(cluster: LocalCluster) -> LocalCluster:
    """A new cluster takes the default port, or the next free one (recorded for later runs)."""
    if os.environ.get("TA_LOCAL_PG_PORT"):
        return cluster
    for port in range(DEFAULT_PORT, DEFAULT_PORT + 100):
        if not _port_in_use(port):
            (cluster.root / "port").write_text(str(port))
            return LocalCluster(root=cluster.root, port=port)
    raise DatabaseError(f"no free port in {DEFAULT_PORT}-{DEFAULT_PORT + 99}: set TA_LOCAL_PG_PORT")


def external_configured(environ: dict[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    return any(environ.get(name) for name in PG_VARIABLES)


def connection_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """PG* variables for the database in use (the configured one, else the local cluster)."""
    environ = dict(os.environ if environ is None else environ)
    if external_configured(environ):
        return {name: environ[name] for name in (*PG_VARIABLES, "PGPASSWORD") if environ.get(name)}
    return local_cluster().env()


def apply_connection_env() -> dict[str, str]:
    """Put the database's PG* variables into this process's environment (for dbt and psycopg2)."""
    values = connection_env()
    os.environ.update(values)
    return values


def ping(timeout_s: int = 5) -> str:
    """Return the server version string, or raise DatabaseError with libpq's reason."""
    import psycopg2

    env = connection_env()
    try:
        conn = psycopg2.connect(
            connect_timeout=timeout_s,
            host=env.get("PGHOST"),
            port=env.get("PGPORT"),
            user=env.get("PGUSER"),
            dbname=env.get("PGDATABASE"),
            password=env.get("PGPASSWORD"),
        )
    except psycopg2.OperationalError as exc:
        where = describe(env)
        raise DatabaseError(f"cannot connect to {where}: {str(exc).strip()}") from None
    try:
        with conn.cursor() as cur:
            cur.execute("show server_version")
            return str(cur.fetchone()[0])
    finally:
        conn.close()


def describe(env: dict[str, str]) -> str:
    return "database {db} as {user} at {host}:{port}".format(
        db=env.get("PGDATABASE", "(default)"),
        user=env.get("PGUSER", "(default)"),
        host=env.get("PGHOST", "(default)"),
        port=env.get("PGPORT", "(default)"),
    )


# --- the local cluster ------------------------------------------------------------------------


def find_server_bindir() -> Path | None:
    """The newest installed PostgreSQL server binaries (Debian layout first, then PATH)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    on_path = shutil.which("postgres")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    return None


def install_server_binaries() -> Path:
    """Install Debian's `postgresql` package (root only), or say exactly what to install."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise DatabaseError(
            "no PostgreSQL server binaries found. Install them (Debian/Ubuntu: "
            "`sudo apt-get install -y postgresql`; macOS: `brew install postgresql@15`), "
            "or point the project at an existing server with PGHOST/PGPORT/PGUSER/PGDATABASE."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "postgresql"]):
        result = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise DatabaseError(f"`{' '.join(cmd)}` failed:\n{result.stderr[-2000:]}")
    bindir = find_server_bindir()
    if bindir is None:
        raise DatabaseError("installed Debian's postgresql package but found no server binaries")
    return bindir


def _server_user() -> str | None:
    """The server refuses to run as root: as root we run it as `postgres` (created if needed)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--home-dir", "/var/lib/postgresql", "postgres"], check=True
        )
    return "postgres"


def _run_as(user: str | None, cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def _chown_tree(path: Path, user: str | None) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for base, dirs, files in os.walk(path):
        os.chown(base, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(os.path.join(base, name), entry.pw_uid, entry.pw_gid)


def cluster_running(cluster: LocalCluster) -> bool:
    bindir = find_server_bindir()
    if bindir is None or not (cluster.data_dir / "PG_VERSION").exists():
        return False
    result = _run_as(_server_user(), [str(bindir / "pg_ctl"), "status", "-D", str(cluster.data_dir)])
    return result.returncode == 0


def up() -> str:
    """Make sure the database answers; start (and first create) the local cluster if it is ours."""
    if external_configured():
        return f"using the configured {describe(connection_env())}: server {ping()}"
    cluster = local_cluster()
    bindir = find_server_bindir() or install_server_binaries()
    user = _server_user()
    for sub in (cluster.root, cluster.socket_dir, cluster.log_file.parent):
        sub.mkdir(parents=True, exist_ok=True)
    if not (cluster.data_dir / "PG_VERSION").exists():
        cluster = _choose_port(cluster)
        _init_cluster(cluster, bindir, user)
    _chown_tree(cluster.root, user)
    _chown_tree(cluster.socket_dir, user)
    if not cluster_running(cluster):
        _start_cluster(cluster, bindir, user)
    _ensure_database(cluster, bindir, user)
    return f"local cluster up: {describe(cluster.env())} (data in {cluster.data_dir}), server {ping()}"


def _init_cluster(cluster: LocalCluster, bindir: Path, user: str | None) -> None:
    if cluster.data_dir.exists():
        shutil.rmtree(cluster.data_dir)  # a half-made data directory from an interrupted initdb
    cluster.data_dir.mkdir(parents=True)
    _chown_tree(cluster.root, user)
    result = _run_as(
        user,
        [
            str(bindir / "initdb"),
            "-D", str(cluster.data_dir),
            "-U", DEFAULT_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ],
    )
    if result.returncode != 0:
        raise DatabaseError(f"initdb failed:\n{result.stderr[-2000:]}")
    # Only the socket and the loopback interface: a throwaway cluster is never exposed.
    with open(cluster.data_dir / "postgresql.auto.conf", "a") as conf:
        conf.write(
            f"listen_addresses = '127.0.0.1'\n"
            f"port = {cluster.port}\n"
            f"unix_socket_directories = '{cluster.socket_dir}'\n"
            "fsync = off\n"
            "synchronous_commit = off\n"
            "full_page_writes = off\n"
            "shared_buffers = '512MB'\n"
            "work_mem = '64MB'\n"
            "maintenance_work_mem = '256MB'\n"
            "max_connections = 60\n"
        )


def _start_cluster(cluster: LocalCluster, bindir: Path, user: str | None) -> None:
    result = _run_as(
        user,
        [
            str(bindir / "pg_ctl"),
            "start",
            "-D", str(cluster.data_dir),
            "-l", str(cluster.log_file),
            "-w",
            "-t", "60",
        ],
    )
    if result.returncode != 0:
        tail = cluster.log_file.read_text()[-2000:] if cluster.log_file.exists() else ""
        raise DatabaseError(
            f"could not start the local cluster on port {cluster.port} "
            f"(is the port taken? set TA_LOCAL_PG_PORT):\n{result.stderr}\n{tail}"
        )


def _ensure_database(cluster: LocalCluster, bindir: Path, user: str | None) -> None:
    env = cluster.env()
    base = [
        "-h", env["PGHOST"], "-p", env["PGPORT"], "-U", env["PGUSER"],
    ]
    for _ in range(30):
        probe = _run_as(user, [str(bindir / "psql"), *base, "-d", "postgres", "-Atc", "select 1"])
        if probe.returncode == 0:
            break
        time.sleep(0.5)
    exists = _run_as(
        user,
        [
            str(bindir / "psql"), *base, "-d", "postgres", "-Atc",
            f"select 1 from pg_database where datname = '{DEFAULT_DATABASE}'",
        ],
    )
    if exists.stdout.strip() != "1":
        created = _run_as(user, [str(bindir / "createdb"), *base, DEFAULT_DATABASE])
        if created.returncode != 0:
            raise DatabaseError(f"createdb failed: {created.stderr.strip()}")


def down() -> str:
    if external_configured():
        return "using a configured database: nothing to stop"
    cluster = local_cluster()
    bindir = find_server_bindir()
    if bindir is None or not cluster_running(cluster):
        return "local cluster is not running"
    result = _run_as(
        _server_user(),
        [str(bindir / "pg_ctl"), "stop", "-D", str(cluster.data_dir), "-m", "fast", "-w"],
    )
    if result.returncode != 0:
        raise DatabaseError(f"pg_ctl stop failed: {result.stderr.strip()}")
    return "local cluster stopped"


def status() -> tuple[bool, str]:
    env = connection_env()
    kind = "configured" if external_configured() else "local"
    try:
        version = ping(timeout_s=3)
    except DatabaseError as exc:
        return False, f"{kind} database is down: {exc}"
    return True, f"{kind} {describe(env)} is up, server {version}"


def env_lines() -> list[str]:
    return [f"export {name}={value}" for name, value in connection_env().items() if name != "PGPASSWORD"]
