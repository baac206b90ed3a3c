"""End to end: the nightly command over the real project on a small generated lake.

Each run is a real `python -m traffic_anomalies.nightly` process (so it can be killed) writing
into a schema of its own. Slow (about a minute per full run on 2 cores).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import connect, drop_schemas, query
from traffic_anomalies import PROJECT_DIR, tasks  # tasks first: it points Luigi at luigi.cfg
from traffic_anomalies import runstate

RUN_DATE = dt.date(2017, 1, 10)  # the lake's last day
LAKE_DAYS = 10
LAKE_USERS = 30
LAKE_SEED = 11
HOURS_STEP = "PcaHours"  # the 24 PCA hours: one step, one dbt invocation on dbt's threads
# Columns that legitimately differ between two runs of the same data.
VOLATILE_TYPES = ("timestamp with time zone", "timestamp without time zone", "ARRAY")
VOLATILE_NAME_PARTS = ("time", "_ms", "built_at", "loaded_at", "run_id", "published_at", "invocation_id")


@pytest.fixture(scope="module")
def lake(generated_lake) -> Path:
    return generated_lake("nightly", users=LAKE_USERS, days=LAKE_DAYS, end=RUN_DATE, seed=LAKE_SEED)


@dataclass
class Pipeline:
    """One target schema and how to run the nightly command into it."""

    schema: str
    lake: Path
    target_root: Path

    def env(self) -> dict[str, str]:
        env = {**os.environ, "TA_SCHEMA": self.schema, "TA_DBT_TARGET_ROOT": str(self.target_root)}
        env.pop("LUIGI_CONFIG_PATH", None)  # the command finds luigi.cfg itself
        return env

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "traffic_anomalies.nightly", *args, "--lake", str(self.lake),
                "--local-scheduler"]

    def run(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), env=self.env(), cwd="/", capture_output=True,
                              text=True, timeout=timeout)

    def start(self, *args: str) -> subprocess.Popen[str]:
        # Own process group: the test kills the command and every dbt it started, like SIGKILL
        # from an operator or the OOM killer would.
        # Output to a file: an unread pipe could fill up and stall the run.
        self.target_root.mkdir(parents=True, exist_ok=True)
        with open(self.target_root / "started-run.log", "w") as log:
            return subprocess.Popen(self.command(*args), env=self.env(), cwd="/", text=True,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return (self.target_root / "started-run.log").read_text()[-4000:]

    def markers(self, date: dt.date = RUN_DATE) -> dict[str, runstate.Marker]:
        """The schema's finished steps whose tables were last built for `date`, by step."""
        return {k: m for k, m in runstate.markers(self.schema).items() if m.run_date == date}

    def hour_tables(self) -> set[str]:
        """The per-hour PCA tables (int_pca_hour_HH) the schema holds now."""
        return {r[0] for r in query("select table_name from information_schema.tables where table_schema = %s "
                                    "and table_name ~ '^int_pca_hour_[0-9]{2}$'", (self.schema,))}

    def complete(self, date: dt.date = RUN_DATE, **params: Any) -> bool:
        previous = os.environ.get("TA_SCHEMA")
        os.environ["TA_SCHEMA"] = self.schema
        try:
            return tasks.nightly_run(date, lake_root=str(self.lake), **params).complete()
        finally:
            if previous is None:
                os.environ.pop("TA_SCHEMA")
            else:
                os.environ["TA_SCHEMA"] = previous

    def marts(self) -> dict[str, list[tuple]]:
        """Every mart's rows as readers see them (the views of the published night, and
        dim_runs; not the history tables), without run-dependent columns, floats rounded
        (PCA signs aside)."""
        tables = [r[0] for r in query(
            "select table_name from information_schema.tables where table_schema = %s "
            "and (table_name like 'fct\\_%%' or table_name like 'dim\\_%%') "
            "and table_name not like '%%\\_history' order by 1", (self.schema,))]
        contents = {}
        for table in tables:
            columns = [
                name for name, data_type in query(
                    "select column_name, data_type from information_schema.columns "
                    "where table_schema = %s and table_name = %s order by ordinal_position",
                    (self.schema, table))
                if data_type not in VOLATILE_TYPES and not any(p in name for p in VOLATILE_NAME_PARTS)
            ]
            select = ", ".join(f'"{c}"' for c in columns)
            rows = query(f'select {select} from "{self.schema}"."{table}"')
            contents[table] = sorted((tuple(_normalise(v) for v in row) for row in rows), key=repr)
        return contents

    def drop(self) -> None:
        drop_schemas(self.schema)
        with connect() as conn, conn.cursor() as cur:
            cur.execute("delete from ta_meta.step_state where target_schema = %s", (self.schema,))


@pytest.fixture
def pipeline_factory(database: dict[str, str], lake: Path, tmp_path: Path) -> Iterator:
    made: list[Pipeline] = []

    def make() -> Pipeline:
        made.append(Pipeline(f"t_night_{uuid.uuid4().hex[:8]}", lake, tmp_path / f"target{len(made)}"))
        return made[-1]

    yield make
    for pipeline in made:
        pipeline.drop()


@pytest.fixture(scope="module")
def full_run(nightly_reference) -> tuple[Pipeline, subprocess.CompletedProcess]:
    """One uninterrupted nightly run, shared by the tests that only read it (conftest's
    nightly_reference, which test_crash_safety shares too)."""
    return nightly_reference, nightly_reference.ran


def test_steps_select_every_model_exactly_once(database: dict[str, str], tmp_path: Path) -> None:
    """The selectors the steps of tasks.py name (selectors.yml), against the models as they are
    now: every model built by exactly one step, and no step runs the unit tests."""
    common = ["ls", "--output", "name", "--quiet",
              "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
              "--target-path", str(tmp_path / "ls")]
    # models/checks holds no pipeline model (dbt_project_evaluator's exceptions, for a check)
    listings: dict[str, list[str]] = {"everything": ["--resource-type", "model", "--exclude", "path:models/checks"]}
    for name, step in tasks.STEPS.items():
        if step.command != ("build",):
            continue
        assert step.selector, name
        listings[name] = ["--selector", step.selector, "--resource-type", "model"]
        listings[f"{name} unit tests"] = ["--selector", step.selector, "--resource-type", "unit_test"]
    # Every listing by dbt's own selection, in one process (one import and one parse of dbt).
    script = (
        "import json, sys\n"
        "from dbt.cli.main import dbtRunner\n"
        "common, listings = json.loads(sys.argv[1])\n"
        "runner, out = dbtRunner(), {}\n"
        "for key, args in listings.items():\n"
        "    result = runner.invoke([*common, *args])\n"
        "    assert result.success, (key, result.exception)\n"
        "    out[key] = sorted(result.result)\n"
        "print('LISTINGS ' + json.dumps(out))\n"
    )
    ran = subprocess.run([sys.executable, "-c", script, json.dumps([common, listings])],
                         capture_output=True, text=True, cwd=PROJECT_DIR)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    line = next(x for x in ran.stdout.splitlines() if x.startswith("LISTINGS "))
    listed = {key: set(names) for key, names in json.loads(line.removeprefix("LISTINGS ")).items()}
    everything = listed.pop("everything")
    assert len(everything) > 24 and "stg_flows" in everything, everything
    unit_tests = {key: names for key, names in listed.items() if key.endswith(" unit tests")}
    assert not any(unit_tests.values()), unit_tests  # they belong to make test (test_unit_tests)
    chosen = {key: names for key, names in listed.items() if key not in unit_tests}
    assert chosen["PcaHours"] == {f"int_pca_hour_{hour:02d}" for hour in range(24)}
    assert all(chosen.values()), {k for k, v in chosen.items() if not v}
    union = set().union(*chosen.values())
    assert everything - union == set(), "models no nightly step builds"
    assert sum(len(v) for v in chosen.values()) == len(union), "models built by two steps"


def test_nightly_builds_everything(full_run) -> None:
    pipeline, ran = full_run
    assert ran.returncode == 0, ran.stdout + ran.stderr
    markers = pipeline.markers()
    families = sorted(m.task_family for m in markers.values())
    for family in ("StageLake", "LoadSeeds", "BuildStaging", "BuildPcaInput", HOURS_STEP, "BuildMarts", "GenerateDocs"):
        assert family in families
    assert pipeline.complete()
    assert "tasks run: " in ran.stdout and "failed: 0" in ran.stdout
    assert "rows (" in ran.stdout and "stg_flows" in ran.stdout and "int_hourly_counts" in ran.stdout
    marts = pipeline.marts()
    assert marts and all(marts.values()), {k: len(v) for k, v in marts.items()}
    assert (pipeline.target_root / "index.html").exists()  # dbt docs generate


def test_second_run_same_date_does_nothing(full_run) -> None:
    pipeline, first = full_run
    assert first.returncode == 0
    before = {k: m.finished_at for k, m in pipeline.markers().items()}
    again = pipeline.run("nightly", "--date", RUN_DATE.isoformat(), "--workers", "4")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "tasks run: 0;" in again.stdout
    assert {k: m.finished_at for k, m in pipeline.markers().items()} == before


def test_kill_during_pca_then_rerun_redoes_the_pca_step_and_what_follows_only(full_run, pipeline_factory) -> None:
    reference, ran = full_run
    assert ran.returncode == 0
    pipeline = pipeline_factory()
    process = pipeline.start("nightly", "--date", RUN_DATE.isoformat(), "--workers", "2")
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and process.poll() is None:
            if len(pipeline.hour_tables()) >= 3:
                break
            time.sleep(0.2)
        assert process.poll() is None, "the run ended before the test could kill it:\n" + pipeline.log()
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    before = {m.step: m.finished_at for m in pipeline.markers().values()}
    assert set(before) == {"StageLake", "LoadSeeds", "BuildStaging", "BuildPcaInput"}, before

    rerun = pipeline.run("nightly", "--date", RUN_DATE.isoformat(), "--workers", "4")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    after = {m.step: m.finished_at for m in pipeline.markers().values()}
    assert {step: after[step] for step in before} == before, "finished steps were redone"
    assert pipeline.hour_tables() == {f"int_pca_hour_{hour:02d}" for hour in range(24)}
    downstream = 3 + tasks.report_available()  # marts, docs, the wrapper (and the report)
    assert f"tasks run: {1 + downstream};" in rerun.stdout
    assert pipeline.marts() == reference.marts()


def test_failing_hour_fails_alone_and_is_named(pipeline_factory) -> None:
    pipeline = pipeline_factory()
    ran = pipeline.run("nightly", "--date", RUN_DATE.isoformat(), "--workers", "4",
                       "--var", 'pca_components_by_hour={"7": 0}')
    assert ran.returncode == 30, ran.stdout + ran.stderr
    # The other 23 hours are built (dbt goes on with the nodes that do not depend on the failure).
    assert pipeline.hour_tables() == {f"int_pca_hour_{hour:02d}" for hour in range(24) if hour != 7}
    assert HOURS_STEP not in {m.task_family for m in pipeline.markers().values()}
    assert ran.stdout.count("FAILED PcaHours") == 1 and "FAILED" not in ran.stderr  # once, in the summary
    failure = ran.stdout.split("FAILED PcaHours")[1]
    assert "model int_pca_hour_07 [error]" in failure and "log: " in failure
    assert "int_pca_hour_06" not in failure.split("not run (upstream failed):")[0]
    assert "report: " not in ran.stdout and "docs: " not in ran.stdout  # no results of a failed run
    assert "pca_components for hour 7" in ran.stdout  # dbt's own message
    assert "BuildMarts" in ran.stdout.split("not run (upstream failed):")[1]
    assert not pipeline.complete(dbt_vars={"pca_components_by_hour": {"7": 0}})


def test_second_run_while_one_is_running_is_refused(pipeline_factory) -> None:
    pipeline = pipeline_factory()
    with runstate.RunLock("nightly held by the test", schema=pipeline.schema):
        ran = pipeline.run("nightly", "--date", RUN_DATE.isoformat())
    assert ran.returncode == 10
    assert "another nightly run is in progress" in ran.stderr and f"pid={os.getpid()}" in ran.stderr


def _normalise(value: Any) -> Any:
    """Floats rounded (and unsigned: PCA signs are arbitrary), also inside json values."""
    if isinstance(value, float):
        return round(abs(value), 4)
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    return value
