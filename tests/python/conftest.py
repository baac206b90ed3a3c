"""Shared fixtures: the real database (the project's own cluster unless PG* name another),
dbt invocations into a schema of each test's own, and generated sample lakes."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

from traffic_anomalies import PROJECT_DIR, localdb

VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"


@pytest.fixture(scope="session", autouse=True)
def database() -> Iterator[dict[str, str]]:
    """Start the database if it is ours, and export its PG* variables for dbt and psycopg2."""
    localdb.up()
    yield localdb.apply_connection_env()
    WarmDbt.close()


# Apache MADlib for the tests that compare madlib_compat with it: a build the checkout does
# not ship (TA_MADLIB_TARBALL, default ../shared/madlib/… beside the checkout).
MADLIB_TARBALL = Path(os.environ.get(
    "TA_MADLIB_TARBALL", PROJECT_DIR.parent / "shared" / "madlib" / "madlib-2.1.0-pg15-debian12-x86_64.tar.gz"))
MADLIB_DATABASE = "traffic_anomalies_madlib"


@pytest.fixture(scope="session")
def madlib_database(database) -> dict[str, str]:
    """A database of its own beside the project's (so `pca_backend: auto` elsewhere still
    means madlib_compat) with MADlib installed from MADLIB_TARBALL, once: its PG* variables."""
    if not MADLIB_TARBALL.is_file():
        pytest.skip(f"MADlib tests: no MADlib tarball at {MADLIB_TARBALL} (set TA_MADLIB_TARBALL)")
    localdb.install_madlib(MADLIB_TARBALL, MADLIB_DATABASE)
    return {**localdb.connection_env(), "PGDATABASE": MADLIB_DATABASE}


def connect() -> psycopg2.extensions.connection:
    conn = psycopg2.connect("")  # libpq reads the PG* variables
    conn.autocommit = True
    return conn


@pytest.fixture()
def pg(database) -> Iterator[psycopg2.extensions.connection]:
    conn = connect()
    yield conn
    conn.close()


def query(sql: str, params: tuple = ()) -> list[tuple]:
    with connect() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


# The warm launcher: dbt imported once, then each command through dbt's programmatic runner in
# that process, one after the other (reads JSON lines {"args", "env"} on stdin, answers
# {"code", "out"} on stdout: the CLI's exit status and console text).
_LAUNCHER = """
import json, os, sys
from dbt.cli.main import dbtRunner
for line in sys.stdin:
    request = json.loads(line)
    os.environ.clear()
    os.environ.update(request["env"])
    out = []
    console = lambda event: out.append(event.info.msg) if event.info.level in ("info", "warn", "error") else None
    result = dbtRunner(callbacks=[console]).invoke([*request["args"], "--log-level", "none"])
    if result.exception is not None:
        out.append(f"Error: {result.exception}")
    code = 0 if result.success else 1 if result.exception is None else 2
    sys.stdout.write(json.dumps({"code": code, "out": "\\n".join(out) + "\\n"}) + "\\n")
    sys.stdout.flush()
"""


class WarmDbt:
    """dbt commands for the tests in one process that has imported dbt, through dbt's runner as
    the nightly runs its steps (traffic_anomalies.dbt): the CLI's exit codes and console text,
    without ~2.5 s of imports per command. TA_DBT_SUBPROCESS=1 starts the `dbt` CLI for each
    command instead."""

    _instance: WarmDbt | None = None

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", _LAUNCHER], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, cwd=PROJECT_DIR)

    @staticmethod
    def usable() -> bool:
        return os.environ.get("TA_DBT_SUBPROCESS", "") in ("", "0")

    @classmethod
    def get(cls) -> WarmDbt:
        if cls._instance is None or cls._instance.process.poll() is not None:
            cls._instance = cls()
        return cls._instance

    @classmethod
    def close(cls) -> None:
        if cls._instance is not None:
            cls._instance.process.stdin.close()
            cls._instance.process.wait(timeout=30)
            cls._instance = None

    def run(self, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
        self.process.stdin.write(json.dumps({"args": args, "env": env}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"the warm dbt launcher died (exit {self.process.wait()})")
        reply = json.loads(line)
        return subprocess.CompletedProcess(["dbt", *args], reply["code"], stdout=reply["out"], stderr="")


@dataclass
class DbtProject:
    """dbt on the real project, writing into its own schema (and `<schema>_lake`)."""

    schema: str
    target_path: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "TA_SCHEMA": self.schema, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}

    def run(self, *args: str, vars: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [
            str(VENV_BIN / "dbt"), *args,
            "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
            "--target-path", str(self.target_path),
        ]
        if vars:
            cmd += ["--vars", json.dumps(vars)]
        if WarmDbt.usable():
            result = WarmDbt.get().run(cmd[1:], env=self.env())
        else:
            result = subprocess.run(cmd, env=self.env(), capture_output=True, text=True, cwd=PROJECT_DIR)
        if check and result.returncode != 0:
            raise AssertionError(f"dbt {' '.join(args)} failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}")
        return result

    def run_results(self) -> dict:
        return json.loads((self.target_path / "run_results.json").read_text())

    def relation(self, name: str) -> str:
        return f'"{self.schema}"."{name}"'


def new_schema(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def drop_schemas(schema: str) -> None:
    with connect() as conn, conn.cursor() as cur:
        for name in (schema, f"{schema}_lake"):
            cur.execute(f'drop schema if exists "{name}" cascade')


@pytest.fixture()
def dbt_project(database, tmp_path) -> Iterator[DbtProject]:
    project = DbtProject(schema=new_schema(), target_path=tmp_path / "target")
    yield project
    drop_schemas(project.schema)


@pytest.fixture(scope="module")
def module_dbt_project(database, tmp_path_factory) -> Iterator[DbtProject]:
    project = DbtProject(schema=new_schema("m"), target_path=tmp_path_factory.mktemp("target"))
    yield project
    drop_schemas(project.schema)


def server_readable_dir(prefix: str) -> Path:
    """A directory the database server (another OS user) can read: pytest's own tmp is 0700."""
    path = Path(tempfile.mkdtemp(prefix=f"traffic_anomalies-{prefix}-"))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def lake_dir_factory() -> Iterator:
    made: list[Path] = []

    def make(prefix: str = "lake") -> Path:
        made.append(server_readable_dir(prefix))
        return made[-1]

    yield make
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def generated_lake(lake_dir_factory):
    """Generated lakes by size, each made once per session and shared (read-only) by every
    module asking for the same one: `generated_lake(prefix, users=, days=, end=, seed=)` gives
    the directory of a lake of `days` days ending on `end`."""
    from traffic_anomalies_dev.lake import generate_lake

    made: dict[tuple, Path] = {}

    def make(prefix: str, *, users: int, days: int, end: dt.date, seed: int, **options) -> Path:
        key = (users, days, end, seed, tuple(sorted(options.items())))
        if key not in made:
            out = lake_dir_factory(prefix)
            generate_lake(out, users=users, days=days, start=end - dt.timedelta(days=days - 1), seed=seed, **options)
            made[key] = out
        return made[key]

    return make


@pytest.fixture(scope="session")
def sample_lake(lake_dir_factory):
    """A small lake with malformed lines and injected anomalies (shared, read-only)."""
    from traffic_anomalies_dev.lake import generate_lake

    out = lake_dir_factory("sample")
    return generate_lake(out, users=40, days=21, start=dt.date(2017, 1, 1), seed=7)


@pytest.fixture(scope="session")
def sample_built(database, sample_lake, tmp_path_factory) -> Iterator[DbtProject]:
    """The whole project run (`dbt run`) on the sample lake in a schema of its own: shared,
    read-only, by the modules that read a built project (the report, the docs site)."""
    project = DbtProject(schema=new_schema("s"), target_path=tmp_path_factory.mktemp("sample_target"))
    lake_root = str(Path(sample_lake.out_dir).resolve())
    try:
        project.run("run-operation", "stage_external_sources", vars={"lake_root": lake_root})
        project.run("run", vars={"lake_root": lake_root})
        yield project
    finally:
        drop_schemas(project.schema)


@pytest.fixture(scope="session")
def nightly_reference(database, generated_lake, tmp_path_factory):
    """One uninterrupted nightly run on test_nightly's lake, shared by the tests that only read
    it (test_nightly, test_crash_safety). It is started twice at once into the same schema:
    one run builds, the other must refuse (test_crash_safety asserts both). Gives the Pipeline,
    with `.concurrent` = (sorted exit codes, both outputs) and `.ran` = the building run as a
    CompletedProcess (stdout and stderr together)."""
    from test_nightly import LAKE_DAYS, LAKE_SEED, LAKE_USERS, RUN_DATE, Pipeline

    lake = generated_lake("nightly", users=LAKE_USERS, days=LAKE_DAYS, end=RUN_DATE, seed=LAKE_SEED)
    pipeline = Pipeline(f"t_night_{uuid.uuid4().hex[:8]}", lake, tmp_path_factory.mktemp("reference"))
    args = ("nightly", "--date", RUN_DATE.isoformat(), "--workers", "4")
    logs = [pipeline.target_root / f"run{i}.log" for i in range(2)]
    processes = []
    try:
        for log in logs:
            with open(log, "w") as out:
                processes.append(subprocess.Popen(
                    pipeline.command(*args), env=pipeline.env(), cwd="/", text=True,
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
        codes = [p.wait(timeout=900) for p in processes]
        outputs = [log.read_text() for log in logs]
        pipeline.concurrent = (sorted(codes), outputs)  # type: ignore[attr-defined]
        building = codes.index(0) if 0 in codes else 0
        pipeline.ran = subprocess.CompletedProcess(  # type: ignore[attr-defined]
            pipeline.command(*args), codes[building], stdout=outputs[building], stderr="")
        yield pipeline
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, 9)
                process.wait()
        pipeline.drop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "whole_database: compares the whole database before and after, so "
                            "nothing else may write to it meanwhile (`make test` runs these after the parallel part)")


# --- parallel runs (pytest-xdist, `make test` runs `-n 2 --dist loadgroup`) -------------------------
#
# Each worker is a process with its own session fixtures. A module's tests stay on one worker (its
# module-scoped build is made once), and modules that read the same session-scoped build share a
# worker too, so the build is made once per run (and MADlib is installed into its database by
# one process, not two at once).
SHARED_SESSION_BUILDS = ("nightly_reference", "sample_built", "madlib_database")


def pytest_sessionstart(session: pytest.Session) -> None:
    """With workers (-n), the database is started and its once-per-database objects are made
    before they start: two workers' first staging would both find the file_fdw server missing."""
    if not getattr(session.config.option, "numprocesses", None) or hasattr(session.config, "workerinput"):
        return
    localdb.up()
    localdb.apply_connection_env()
    query("create extension if not exists file_fdw")
    query("do $$ begin if not exists (select 1 from pg_foreign_server where srvname = 'traffic_anomalies_lake') "
          "then create server traffic_anomalies_lake foreign data wrapper file_fdw; end if; end $$")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the marks into the node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    modules: dict[str, set[str]] = {}
    for item in items:
        used = set(getattr(item, "fixturenames", ())) & set(SHARED_SESSION_BUILDS)
        modules.setdefault(item.path.stem, set()).update(used)
    group = {module: module for module in modules}

    def root(module: str) -> str:
        while group[module] != module:
            module = group[module]
        return module

    for build in SHARED_SESSION_BUILDS:
        users = sorted(module for module, used in modules.items() if build in used)
        for module in users[1:]:
            group[root(module)] = root(users[0])
    for item in items:
        item.add_marker(pytest.mark.xdist_group(root(item.path.stem)))
