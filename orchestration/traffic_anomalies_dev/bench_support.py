"""Helpers of the nightly benchmark: memory sampling of a process tree and its database
backends, the benchmark's schemas, and its lakes."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import psycopg2

from traffic_anomalies import PROJECT_DIR

START = dt.date(2017, 1, 1)
SEED = 42


# --- memory sampling ---------------------------------------------------------------------------


def _status(pid: int) -> dict[str, int]:
    """VmRSS / RssAnon of a process in kB (0 when it is gone or unreadable)."""
    out = {"VmRSS": 0, "RssAnon": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in out:
                out[key] = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return out


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _tree(roots: list[int], children: dict[int, list[int]]) -> set[int]:
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, ()))
    return seen


class MemorySampler:
    """Samples, every `interval` s, the RSS of a client process tree (Python, Luigi workers, dbt)
    and of the database backends connected to our database (with their parallel workers and the
    lake reader programs they run). Backend figures are private memory (RssAnon): their RSS also
    counts the shared buffers each one touched, which would be counted once per backend."""

    def __init__(self, root_pid: int, interval: float = 0.25):
        self.root_pid = root_pid
        self.interval = interval
        self.peak_client_kb = 0
        self.peak_backends_anon_kb = 0
        self.peak_backends_rss_kb = 0
        self.peak_backends = 0
        self.samples = 0
        self._stop = threading.Event()
        self._conn = psycopg2.connect("", application_name="bench-nightly memory sampler")
        self._conn.autocommit = True
        with self._conn.cursor() as cur:
            cur.execute("select pg_backend_pid()")
            self._own = cur.fetchone()[0]
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _backend_pids(self) -> list[int]:
        with self._conn.cursor() as cur:
            cur.execute(
                "select pid from pg_stat_activity where datname = current_database() and pid <> %s",
                (self._own,))
            return [r[0] for r in cur.fetchall()]

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                children = _children_map()
                client = _tree([self.root_pid], children)
                backends = _tree(self._backend_pids(), children) - client
                client_kb = sum(_status(p)["VmRSS"] for p in client)
                stats = [_status(p) for p in backends]
                self.peak_client_kb = max(self.peak_client_kb, client_kb)
                self.peak_backends_anon_kb = max(self.peak_backends_anon_kb, sum(s["RssAnon"] for s in stats))
                self.peak_backends_rss_kb = max(self.peak_backends_rss_kb, sum(s["VmRSS"] for s in stats))
                self.peak_backends = max(self.peak_backends, len(stats))
                self.samples += 1
            except (psycopg2.Error, OSError):
                pass
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._conn.close()

    def result(self) -> dict[str, Any]:
        return {
            "client_tree_peak_rss_mb": round(self.peak_client_kb / 1024, 1),
            "backends_peak_private_mb": round(self.peak_backends_anon_kb / 1024, 1),
            "backends_peak_rss_mb": round(self.peak_backends_rss_kb / 1024, 1),
            "backends_peak_count": self.peak_backends,
            "samples": self.samples,
        }


# --- database helpers --------------------------------------------------------------------------


def connect() -> psycopg2.extensions.connection:
    conn = psycopg2.connect("", application_name="bench-nightly")
    conn.autocommit = True
    return conn


def query(sql: str, params: tuple = ()) -> list[tuple]:
    with connect() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


def reset_schema(schema: str) -> None:
    """A fresh pipeline: no tables, no completion markers, no artifacts of an earlier bench."""
    with connect() as conn, conn.cursor() as cur:
        for name in (schema, f"{schema}_lake"):
            cur.execute(f'drop schema if exists "{name}" cascade')
        cur.execute("select to_regclass('ta_meta.step_state')")
        if cur.fetchone()[0] is not None:
            cur.execute("delete from ta_meta.step_state where target_schema = %s", (schema,))
    shutil.rmtree(run_root(schema), ignore_errors=True)


def drop_schema(schema: str) -> None:
    reset_schema(schema)


def run_root(schema: str) -> Path:
    root = os.environ.get("TA_DBT_TARGET_ROOT") or PROJECT_DIR / "target"
    return Path(root).resolve() / "nightly" / schema


def server_info() -> dict[str, Any]:
    rows = dict(query("select name, setting || coalesce(unit, '') from pg_settings where name in "
                       "('server_version', 'shared_buffers', 'work_mem', 'max_parallel_workers_per_gather', "
                       "'jit', 'max_worker_processes')"))
    return rows


# --- lakes -------------------------------------------------------------------------------------


def _readable_by_others(path: Path) -> None:
    """The database server (another OS user) reads the lake: open every directory on the way."""
    for parent in [path, *path.parents]:
        try:
            mode = parent.stat().st_mode
        except OSError:
            continue
        if not mode & 0o001 and parent.owner() == os.environ.get("USER", parent.owner()):
            try:
                parent.chmod(mode | 0o055)
            except OSError:
                pass


def ensure_lake(lake_dir: Path, users: int, days: int) -> tuple[Path, float | None]:
    """A lake of `users` x `days` from START with SEED; reused when one is already there."""
    from traffic_anomalies_dev.lake import generate_lake

    path = lake_dir / f"u{users}_d{days}_s{SEED}"
    manifest = path / "manifest.json"
    if manifest.exists():
        params = json.loads(manifest.read_text()).get("parameters", {})
        if params.get("users") == users and params.get("days") == days and params.get("seed") == SEED:
            return path, None
    path.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    generate_lake(path, users=users, days=days, start=START, seed=SEED)
    elapsed = time.perf_counter() - started
    for root, dirs, files in os.walk(path):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    _readable_by_others(path)
    return path, elapsed


