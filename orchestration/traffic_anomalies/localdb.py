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


# --- Apache MADlib from a build the user provides -----------------------------------------------
#
# The project never builds or downloads MADlib: a user brings a build of it (their PostgreSQL or
# Greenplum distribution's, or one made from source), packed as a tarball holding an install tree
# with an `install-madlib.sh` at its top. It is unpacked under .local/madlib/ (the server loads the
# library and the Python modules from there, so that folder must stay put) and installed into
# one database by that script, which runs madpack (needs a superuser, plpython3u, PyYAML, m4).

MADLIB_INSTALLER = "install-madlib.sh"


def madlib_root() -> Path:
    return Path(os.environ.get("TA_MADLIB_DIR", PROJECT_DIR / ".local" / "madlib")).resolve()


def _unpack_madlib(tarball: Path) -> Path:
    """The tarball's install tree under .local/madlib/<tarball name>/ (unpacked once)."""
    import tarfile

    if not tarball.is_file():
        raise DatabaseError(f"MADlib tarball not found: {tarball}")
    name = tarball.name.removesuffix(".gz").removesuffix(".tgz").removesuffix(".tar")
    target = madlib_root() / name
    stamp = target / ".unpacked"
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    if not (stamp.exists() and stamp.read_text() == digest):
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        with tarfile.open(tarball) as archive:
            archive.extractall(target, filter="tar")
        stamp.write_text(digest)
    found = sorted(target.glob(f"*/{MADLIB_INSTALLER}")) + sorted(target.glob(MADLIB_INSTALLER))
    if not found:
        raise DatabaseError(
            f"{tarball.name} has no {MADLIB_INSTALLER} at its top: pack a MADlib install tree with "
            "that script, or install MADlib with your distribution's madpack instead")
    # The server runs as another OS user: it must read the tree (install-madlib.sh checks that
    # it can, and says so when a folder above .local/ keeps it out).
    for base, dirs, files in os.walk(target):
        os.chmod(base, os.stat(base).st_mode | 0o005)
        for file in files:
            path = os.path.join(base, file)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | 0o004)
    return found[0].parent


def _madlib_requirements(bindir: Path | None) -> None:
    """plpython3u in the server, PyYAML and m4 for madpack: installed with apt as root on Debian."""
    major = bindir.parent.name if bindir is not None else "15"
    missing = []
    if bindir is None or not glob.glob(f"/usr/lib/postgresql/{major}/lib/plpython3.so"):
        missing.append(f"postgresql-plpython3-{major}")
    if subprocess.run([_system_python(), "-c", "import yaml"], capture_output=True).returncode != 0:
        missing.append("python3-yaml")
    if not shutil.which("m4"):  # madpack preprocesses MADlib's SQL with it
        missing.append("m4")
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise DatabaseError(
            f"MADlib needs {' and '.join(missing)} on the database server host "
            f"(Debian/Ubuntu: `sudo apt-get install -y {' '.join(missing)}`)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=300", *missing]
    for cmd in (["apt-get", "update", "-q"], install):
        result = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise DatabaseError(f"`{' '.join(cmd)}` failed:\n{result.stderr[-2000:]}")


def _system_python() -> str:
    # madpack runs with the system's python3 (where apt puts PyYAML), not a venv's or pyenv's
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"


def madlib_version(env: dict[str, str]) -> str | None:
    """MADlib's version in the database `env` names, or None when it is not installed there."""
    import psycopg2

    conn = psycopg2.connect(host=env.get("PGHOST"), port=env.get("PGPORT"), user=env.get("PGUSER"),
                            dbname=env.get("PGDATABASE"), password=env.get("PGPASSWORD"))
    try:
        with conn.cursor() as cur:
            cur.execute("select to_regprocedure('madlib.version()') is not null")
            if not cur.fetchone()[0]:
                return None
            cur.execute("select madlib.version()")
            text = str(cur.fetchone()[0])   # "MADlib version: 2.1.0, git revision: …"
            return text.split(",")[0].removeprefix("MADlib version:").strip()
    except psycopg2.Error:
        return None    # installed from a folder that is gone: the library no longer loads
    finally:
        conn.close()


def create_database(name: str) -> dict[str, str]:
    """A database of that name beside the project's one (created when missing); its PG* env."""
    import psycopg2

    env = {**connection_env(), "PGDATABASE": name}
    conn = psycopg2.connect(host=env.get("PGHOST"), port=env.get("PGPORT"), user=env.get("PGUSER"),
                            dbname="postgres", password=env.get("PGPASSWORD"))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'create database "{name}"')
    finally:
        conn.close()
    return env


def install_madlib(tarball: str | os.PathLike, database: str | None = None) -> str:
    """Install the MADlib build in `tarball` into `database` (default: the project's), once."""
    env = connection_env() if database is None else create_database(database)
    bindir = find_server_bindir()
    _madlib_requirements(bindir)
    folder = _unpack_madlib(Path(tarball).resolve())
    installed = madlib_version(env)
    if installed:
        return f"MADlib {installed} already in {describe(env)}"
    path = os.pathsep.join(filter(None, [str(bindir) if bindir else "", os.environ.get("PATH", "")]))
    result = subprocess.run(
        ["bash", str(folder / MADLIB_INSTALLER)],
        env={**os.environ, **env, "PATH": path, "PYTHON": _system_python()},
        capture_output=True, text=True)
    if result.returncode != 0:
        raise DatabaseError(f"MADlib install into {describe(env)} failed:\n"
                            f"{(result.stdout + result.stderr)[-3000:]}")
    return f"MADlib {madlib_version(env)} installed into {describe(env)} from {folder}"
