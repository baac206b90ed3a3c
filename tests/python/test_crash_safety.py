"""Crash safety and concurrency of the nightly run, end to end on a small lake.

* Two nightly runs started together into one schema: one runs, the other refuses with a clear
  message (exit 10); what the one built is the reference.
* Another schema's run is SIGKILLed (the whole process group: the command and every dbt it
  started) during each stage in turn: staging, hourly counts, a PCA hour, the marts; after each
  kill no model's relation holds anything but what a finished build puts there (no half-built
  table is visible under a model's name); the last rerun's marts equal the reference.

Uses test_nightly's Pipeline (a schema and how to run the nightly command into it), its lake
and its reference run (conftest's nightly_reference: built once for both modules).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import query
from test_nightly import LAKE_DAYS, LAKE_SEED, LAKE_USERS, RUN_DATE, Pipeline

# (stage, the dbt step whose log shows it, the node whose start triggers the kill)
STAGES = [
    ("staging", "BuildStaging", "base_lake__flow_lines_shard_"),
    ("hourly counts", "BuildStaging", "int_hourly_counts"),
    ("PCA", "PcaHours", "int_pca_hour_"),
    ("marts", "BuildMarts", "fct_user_outliers"),
]


@pytest.fixture(scope="module")
def lake(generated_lake) -> Path:
    return generated_lake("nightly", users=LAKE_USERS, days=LAKE_DAYS, end=RUN_DATE, seed=LAKE_SEED)


@pytest.fixture(scope="module")
def pipelines(database, lake, tmp_path_factory) -> Iterator:
    made: list[Pipeline] = []

    def make(name: str) -> Pipeline:
        made.append(Pipeline(f"t_crash_{uuid.uuid4().hex[:8]}", lake, tmp_path_factory.mktemp(name)))
        return made[-1]

    yield make
    for pipeline in made:
        pipeline.drop()


@pytest.fixture(scope="module")
def reference(nightly_reference) -> Pipeline:
    """Two runs started together: one builds, the other refuses; the one's build is the reference
    (conftest's nightly_reference, which test_nightly shares: the same lake, the same run)."""
    return nightly_reference


def test_two_runs_started_together_one_refuses_and_the_result_is_one_runs(reference):
    codes, outputs = reference.concurrent
    assert codes == [0, 10], outputs
    refused = next(o for o in outputs if "another nightly run is in progress" in o)
    assert f"for schema '{reference.schema}'" in refused and "--wait" in refused
    assert reference.complete()
    marts = reference.marts()
    assert marts and all(marts.values())
    # Started again with --wait while nothing runs: finds everything done.
    again = reference.run("nightly", "--date", RUN_DATE.isoformat(), "--wait")
    assert again.returncode == 0 and "tasks run: 0;" in again.stdout, again.stdout + again.stderr


def checksum(rows: list[tuple]) -> str:
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def model_relations(schema: str) -> dict[str, str]:
    """Every relation dbt or the PCA materialization leaves under a model's (or companion's) name."""
    return dict(query(
        "select c.relname, c.relkind::text from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relkind in ('r', 'v', 'p', 'm')", (schema,)))


def relation_contents(pipeline: Pipeline, table: str) -> list[tuple]:
    """Rows without run-dependent columns, floats rounded (PCA signs aside), sorted."""
    from test_nightly import VOLATILE_NAME_PARTS, VOLATILE_TYPES

    columns = [name for name, data_type in query(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = %s and table_name = %s order by ordinal_position", (pipeline.schema, table))
        if data_type not in VOLATILE_TYPES and not any(p in name for p in VOLATILE_NAME_PARTS)]
    if not columns:
        return []
    rows = query(f'select {", ".join(chr(34) + c + chr(34) for c in columns)} from "{pipeline.schema}"."{table}"')
    return sorted((tuple(round(abs(v), 4) if isinstance(v, float) else v for v in row) for row in rows), key=repr)


def wait_for_node_start(pipeline: Pipeline, process: subprocess.Popen, step: str, node: str, timeout: float = 600) -> None:
    """Until dbt logs the start of `node` in the given step's log (or the run ends)."""
    folder = pipeline.target_root / "nightly" / pipeline.schema / RUN_DATE.isoformat()
    started = f"model {pipeline.schema}.{node}"  # not its unit tests, which start first
    read: dict[Path, tuple[int, bytes]] = {}  # per log: bytes read, the unfinished last line
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        for log in folder.glob(f"{step}/dbt.log"):
            # Only what was appended since the last look: rereading the whole log 50 times a
            # second took CPU from the run being watched.
            offset, partial = read.get(log, (0, b""))
            with open(log, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            *lines, partial = (partial + chunk).split(b"\n")
            read[log] = (offset + len(chunk), partial)
            if any(b"START" in line and started.encode() in line for line in lines):
                return
        time.sleep(0.02)
    raise AssertionError(f"{node} never started (run exit {process.poll()}):\n"
                         + (pipeline.target_root / "started-run.log").read_text()[-3000:])


def test_sigkill_during_each_stage_then_rerun_gives_the_reference_marts(reference, pipelines):
    pipeline = pipelines("crashed")
    args = ("nightly", "--date", RUN_DATE.isoformat(), "--workers", "4")
    for stage, step, node in STAGES:
        for log in (pipeline.target_root / "nightly").rglob("dbt.log"):
            log.unlink()  # only this run's lines count
        process = pipeline.start(*args)
        try:
            wait_for_node_start(pipeline, process, step, node)
            assert process.poll() is None, f"the run ended before the kill during {stage}"
            os.killpg(process.pid, signal.SIGKILL)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        time.sleep(0.5)  # the server notices the dead connections and rolls their work back
        # Whatever is visible under a model's name is complete: it equals the reference's.
        visible = model_relations(pipeline.schema)
        expected = model_relations(reference.schema)
        assert set(visible) <= set(expected), f"after the kill during {stage}: {set(visible) - set(expected)}"
        assert not pipeline.complete()
        for table, kind in visible.items():
            if kind == "v":
                continue  # views hold no data of their own
            assert checksum(relation_contents(pipeline, table)) == checksum(relation_contents(reference, table)), (
                f"after the kill during {stage}, {table} differs from a finished build's")
    rerun = pipeline.run(*args)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert pipeline.complete()
    assert {t: checksum(rows) for t, rows in pipeline.marts().items()} == {
        t: checksum(rows) for t, rows in reference.marts().items()}
