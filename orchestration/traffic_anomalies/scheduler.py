"""`traffic-anomalies scheduler up | down | status | serve`: the central Luigi scheduler (luigid).

It listens on 127.0.0.1 only and records every task it schedules in the project's database
(Luigi's task history: tables `tasks`, `task_events`, `task_parameters` in schema
`ta_task_history`), so durations and outcomes of past nights stay queryable in SQL.
"""

from __future__ import annotations

import configparser
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from traffic_anomalies import PROJECT_DIR, localdb, tasks

SCHEDULER_HOST = "127.0.0.1"  # luigid would listen on every interface by default
SCHEDULER_PORT = 8082
HISTORY_SCHEMA = "ta_task_history"
# No host, user or password in the URL: psycopg2 (libpq) takes them from the PG* variables
# luigid inherits, so no secret is written to the generated configuration.
HISTORY_URL = f"postgresql+psycopg2://?options=-csearch_path%3D{HISTORY_SCHEMA}"


def luigi_dir() -> Path:
    """Scheduler state, pid file and logs (TA_LUIGI_DIR moves them, e.g. for tests)."""
    return Path(os.environ.get("TA_LUIGI_DIR", PROJECT_DIR / ".local" / "luigi")).resolve()


def scheduler_url(port: int = SCHEDULER_PORT) -> str:
    return f"http://{SCHEDULER_HOST}:{port}/"


def scheduler_answers(url: str, timeout_s: float = 1.0) -> bool:
    """True when a Luigi scheduler answers its RPC API at `url` (not merely an open port)."""
    query = urllib.parse.urlencode({"data": json.dumps({"status": "RUNNING"})})
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/api/task_list?{query}", timeout=timeout_s) as resp:
            return "response" in json.load(resp)
    except (OSError, ValueError):  # refused, timed out, or not Luigi's JSON: no scheduler there
        return False


def _pidfile(directory: Path) -> Path:
    return directory / "luigid.pid"


def _running_pid(directory: Path) -> int | None:
    """The pid in our pid file if that process is still a luigid (pids get reused)."""
    try:
        pid = int(_pidfile(directory).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ValueError):
        return None
    return pid if b"luigid" in cmdline else None


def prepare_task_history(directory: Path) -> Path:
    """Create the history schema and write luigid's configuration: luigi.cfg with the task
    history on. Workers keep reading luigi.cfg, where it is off: only luigid records."""
    import psycopg2

    localdb.apply_connection_env()
    try:
        with psycopg2.connect("", connect_timeout=10) as conn, conn.cursor() as cur:
            cur.execute("select 1 from pg_namespace where nspname = %s", (HISTORY_SCHEMA,))
            if cur.fetchone() is None:  # only when missing: the role need not be allowed to create schemas
                cur.execute(f"create schema {HISTORY_SCHEMA}")
    except psycopg2.Error as exc:
        raise RuntimeError(f"the task history needs the project's database ({str(exc).strip()}): "
                           "start it first (traffic-anomalies db up)") from None
    config = configparser.RawConfigParser()
    config.read(tasks.LUIGI_CONFIG)
    for section in ("scheduler", "task_history"):
        if not config.has_section(section):
            config.add_section(section)
    config.set("scheduler", "record_task_history", "true")
    config.set("task_history", "db_connection", HISTORY_URL.replace("%", "%%"))  # Luigi interpolates %
    path = directory / "luigid.cfg"
    with open(path, "w") as out:
        out.write(f"# Written by `traffic-anomalies scheduler up` from {tasks.LUIGI_CONFIG}: do not edit.\n")
        config.write(out)
    return path


def scheduler_up(port: int = SCHEDULER_PORT, directory: Path | None = None) -> str:
    directory = directory or luigi_dir()
    url = scheduler_url(port)
    pid = _running_pid(directory)
    if pid is not None and scheduler_answers(url):
        return f"scheduler already up at {url} (pid {pid})"
    if scheduler_answers(url):
        raise RuntimeError(f"another Luigi scheduler (not ours) already answers at {url}")
    (directory / "log").mkdir(parents=True, exist_ok=True)
    config = prepare_task_history(directory)
    luigid = Path(sys.executable).parent / "luigid"
    command = [
        str(luigid) if luigid.exists() else "luigid",
        "--background",
        "--address", SCHEDULER_HOST,
        "--port", str(port),
        "--pidfile", str(_pidfile(directory)),
        "--logdir", str(directory / "log"),
        "--state-path", str(directory / "state.pickle"),
    ]
    # Luigi's history code uses SQLAlchemy 1.4's API (hence the <2 pin); its notice says only that.
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(config), "SQLALCHEMY_SILENCE_UBER_WARNING": "1"}
    started = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True)
    if started.returncode != 0:
        raise RuntimeError(f"luigid failed to start:\n{started.stderr[-2000:]}")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if scheduler_answers(url) and _running_pid(directory) is not None:
            return (
                f"scheduler up at {url} (pid {_running_pid(directory)}); "
                f"visualiser {url}static/visualiser/index.html; task history {url}history "
                f"and schema {HISTORY_SCHEMA}; state and logs in {directory}"
            )
        time.sleep(0.2)
    raise RuntimeError(f"luigid did not answer at {url} within 20 s; see {directory / 'log'}")


def scheduler_serve(port: int = SCHEDULER_PORT, address: str = SCHEDULER_HOST,
                    directory: Path | None = None) -> None:
    """luigid in the foreground, in place of this process, with the same task history as
    `scheduler up`: for a container, whose main process it must be (docker/compose.yaml)."""
    directory = directory or luigi_dir()
    (directory / "log").mkdir(parents=True, exist_ok=True)
    config = prepare_task_history(directory)
    luigid = Path(sys.executable).parent / "luigid"
    program = str(luigid) if luigid.exists() else "luigid"
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(config), "SQLALCHEMY_SILENCE_UBER_WARNING": "1"}
    sys.stdout.flush()
    os.execvpe(program, [program, "--address", address, "--port", str(port),
                         "--logdir", str(directory / "log"), "--state-path", str(directory / "state.pickle")], env)


def scheduler_down(directory: Path | None = None) -> str:
    directory = directory or luigi_dir()
    pid = _running_pid(directory)
    if pid is None:
        _pidfile(directory).unlink(missing_ok=True)
        return "scheduler is not running"
    os.kill(pid, signal.SIGTERM)  # luigid saves its state on SIGTERM
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.1)
    if Path(f"/proc/{pid}").exists():
        raise RuntimeError(f"luigid (pid {pid}) did not stop within 20 s")
    _pidfile(directory).unlink(missing_ok=True)
    return f"scheduler stopped (pid {pid})"


def scheduler_status(port: int = SCHEDULER_PORT, directory: Path | None = None) -> tuple[bool, str]:
    directory = directory or luigi_dir()
    url = scheduler_url(port)
    pid = _running_pid(directory)
    answers = scheduler_answers(url)
    if pid is not None and answers:
        return True, f"scheduler up at {url} (pid {pid})"
    if answers:
        return True, f"a scheduler not started by us answers at {url}"
    if pid is not None:
        return False, f"luigid pid {pid} is running but does not answer at {url}"
    return False, f"scheduler is down (nothing answers at {url})"
