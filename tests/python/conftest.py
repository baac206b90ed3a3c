"""Shared fixtures: the real database (the project's own cluster unless PG* name another),
dbt invocations into a schema of each test's own, and generated sample lakes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
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
def database() -> dict[str, str]:
    """Start the database if it is ours, and export its PG* variables for dbt and psycopg2."""
    localdb.up()
    return localdb.apply_connection_env()


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
def sample_lake(lake_dir_factory):
    """A small lake with malformed lines and injected anomalies (shared, read-only)."""
    from traffic_anomalies.lake import generate_lake
    import datetime as dt

    out = lake_dir_factory("sample")
    return generate_lake(out, users=40, days=21, start=dt.date(2017, 1, 1), seed=7)
