"""Database outage: with the database stopped, every command fails fast, says so clearly and
exits non-zero; once the database is back, the same commands succeed.

Runs against a throwaway cluster this test creates and stops itself (initdb + pg_ctl of the
machine's server binaries, as the `postgres` OS user when we are root, like localdb does),
never the shared server or the project's own cluster.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import VENV_BIN
from traffic_anomalies import localdb

RUN_DATE = dt.date(2017, 1, 6)
FAST_S = 20  # "fails fast": well before any retry loop or TCP timeout would end


def _free_port() -> int:
    """The first free port from TA_TEST_OUTAGE_PORT on (machines running several test suites
    at once give each its own range), else any free port."""
    start = int(os.environ.get("TA_TEST_OUTAGE_PORT") or 0)
    for port in range(start, start + 100) if start else [0]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise AssertionError(f"no free port from TA_TEST_OUTAGE_PORT={start} on")


@dataclass
class Cluster:
    root: Path
    port: int
    bindir: Path
    user: str | None

    @property
    def data(self) -> Path:
        return self.root / "data"

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess:
        return localdb._run_as(self.user, [str(self.bindir / "pg_ctl"), *args, "-D", str(self.data)])

    def start(self) -> None:
        started = self.pg_ctl("start", "-w", "-t", "60", "-l", str(self.root / "server.log"))
        assert started.returncode == 0, started.stderr + (self.root / "server.log").read_text()[-2000:]

    def stop(self) -> None:
        stopped = self.pg_ctl("stop", "-m", "fast", "-w")
        assert stopped.returncode == 0, stopped.stderr

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "LUIGI_CONFIG_PATH"}
        return {**env, "PGHOST": "127.0.0.1", "PGPORT": str(self.port), "PGUSER": "ta_outage",
                "PGDATABASE": "postgres", "TA_SCHEMA": "t_outage", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                **extra}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    bindir = localdb.find_server_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries on this machine")
    user = localdb._server_user()
    root = Path(tempfile.mkdtemp(prefix="ta-outage-"))
    root.chmod(0o755)
    (root / "data").mkdir()
    (root / "run").mkdir()
    localdb._chown_tree(root, user)
    made = localdb._run_as(user, [str(bindir / "initdb"), "-D", str(root / "data"), "-U", "ta_outage",
                                  "--auth=trust", "--encoding=UTF8", "--locale=C"])
    assert made.returncode == 0, made.stderr
    port = _free_port()
    with open(root / "data" / "postgresql.auto.conf", "a") as conf:
        conf.write(f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{root / 'run'}'\n"
                   "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
    localdb._chown_tree(root, user)
    made = Cluster(root, port, bindir, user)
    made.start()
    try:
        yield made
    finally:
        made.pg_ctl("stop", "-m", "immediate", "-w")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def tiny_lake(lake_dir_factory) -> Path:
    from traffic_anomalies_dev.lake import generate_lake

    lake = lake_dir_factory("outage")
    generate_lake(lake, users=12, days=6, start=RUN_DATE - dt.timedelta(days=5), seed=3)
    return lake


def commands(lake: Path, target: Path) -> dict[str, list[str]]:
    date = RUN_DATE.isoformat()
    return {
        "db status": ["db", "status"],
        "nightly": ["nightly", "--date", date, "--lake", str(lake), "--local-scheduler", "--workers", "4"],
        "report": ["report", "--date", date],
        "docs": ["docs", "--no-serve", "--target-path", str(target / "docs")],
    }


def run(cluster: Cluster, argv: list[str], target: Path, timeout: float = 600) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run([str(VENV_BIN / "traffic-anomalies"), *argv], capture_output=True, text=True,
                          env=cluster.env(TA_DBT_TARGET_ROOT=str(target), TA_LUIGI_DIR=str(target / "luigi")),
                          cwd="/", timeout=timeout)
    return done, time.monotonic() - started


def test_every_command_fails_fast_while_the_database_is_down_and_works_once_it_is_back(
        cluster, tiny_lake, tmp_path):
    cluster.stop()
    try:
        for name, argv in commands(tiny_lake, tmp_path).items():
            done, elapsed = run(cluster, argv, tmp_path, timeout=120)
            output = done.stdout + done.stderr
            assert done.returncode != 0, f"{name} succeeded without a database:\n{output}"
            assert elapsed < FAST_S, f"{name} took {elapsed:.1f}s to fail"
            assert "Traceback" not in output, f"{name}:\n{output}"
            assert f"127.0.0.1:{cluster.port}" in output and ("cannot connect" in output or "is down" in output), (
                f"{name} does not say the database is down:\n{output}")
    finally:
        cluster.start()
    # Back: the same commands succeed (the nightly first: the report reads its marts).
    for name in ("db status", "nightly", "report", "docs"):
        done, _ = run(cluster, commands(tiny_lake, tmp_path)[name], tmp_path)
        assert done.returncode == 0, f"{name} failed with the database up:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"


def test_database_lost_during_the_marts_fails_in_one_line_and_the_previous_night_stays_whole(
        cluster, tiny_lake, tmp_path):
    """The database stops while BuildMarts writes the new night: the command ends with the
    run's exit code and one line naming the lost connection (it used to print the summary, then
    a psycopg2 traceback, exit 1); once the database is back, every mart shows the previous
    complete night, one run, and the report reads it."""
    target = tmp_path / "lost"
    env = cluster.env(TA_DBT_TARGET_ROOT=str(target), TA_LUIGI_DIR=str(target / "luigi"))
    first, _ = run(cluster, commands(tiny_lake, target)["nightly"], target)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    before = _mart_runs(cluster)
    assert len(set().union(*before.values())) == 1, before

    log = target / "nightly" / "t_outage" / RUN_DATE.isoformat() / "BuildMarts" / "dbt.log"
    log.unlink(missing_ok=True)
    with open(target / "lost.log", "w") as out:
        process = subprocess.Popen([str(VENV_BIN / "traffic-anomalies"), *commands(tiny_lake, target)["nightly"], "--force"],
                                   env=env, cwd="/", stdout=out, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
    try:
        deadline, seen, tail = time.monotonic() + 600, 0, b""
        while time.monotonic() < deadline and process.poll() is None:
            if log.exists():
                # Only what was appended since the last look (after the previous read's end, which
                # the name may straddle): rereading the whole log 20 times a second took CPU from
                # the run being watched.
                with open(log, "rb") as f:
                    f.seek(seen)
                    chunk = f.read()
                seen += len(chunk)
                if b"fct_user_outliers_history" in tail + chunk:
                    break
                tail = (tail + chunk)[-len(b"fct_user_outliers_history"):]
            time.sleep(0.05)
        assert process.poll() is None, (target / "lost.log").read_text()[-3000:]
        cluster.pg_ctl("stop", "-m", "fast", "-w")
        code = process.wait(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
            process.wait()
        cluster.start()
    output = (target / "lost.log").read_text()
    assert code == 30, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    assert "error: lost the database connection (" in output, output[-4000:]
    assert "report: " not in output and "docs: " not in output
    assert _mart_runs(cluster) == before  # the previous night, whole
    report, _ = run(cluster, commands(tiny_lake, target)["report"], target)
    assert report.returncode == 0, report.stderr


def _mart_runs(cluster: Cluster) -> dict[str, set[tuple]]:
    import psycopg2

    env = cluster.env()
    with psycopg2.connect(host=env["PGHOST"], port=env["PGPORT"], user=env["PGUSER"], dbname=env["PGDATABASE"]) as conn:
        with conn.cursor() as cur:
            runs = {}
            for mart in ("dim_days", "dim_users", "fct_pca_components", "fct_pca_summary", "fct_user_outliers",
                         "fct_day_anomalies", "fct_user_spikes"):
                cur.execute(f"select distinct run_id, run_date from t_outage.{mart}")
                runs[mart] = set(cur.fetchall())
    return runs
