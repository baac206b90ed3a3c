"""One night = one snapshot, end to end on a tiny lake (issue: a night is whole or it fails).

One schema, one sequence of nightly runs (the tests run in file order and build on each other):

* the night of D, then of D-1 (a run for another date rebuilds the schema's shared tables),
  then of D again: it must run again (it used to be "skipped as already complete" while
  dim_days held D-1's window) and give the first night's marts; once more: nothing to run, and
  the summary says why; a changed lake file makes the date incomplete again;
* every mart row carries its run (run_id, run_date), every mart shows the same published run,
  the history keeps the latest run of each night;
* `--force` reruns from the start; SIGTERM during the PCA hours ends the command with a summary
  that says interrupted (exit 143), no process left behind, the marts still showing the previous
  night; the rerun resumes with the missing hours only and publishes the new night;
* `report` refuses marts that show two different runs.

Uses test_nightly's Pipeline (a schema and how to run the nightly command into it).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import VENV_BIN, query
from test_nightly import Pipeline

D = dt.date(2017, 1, 8)  # the lake's last day
MARTS = ("dim_days", "dim_users", "fct_pca_components", "fct_pca_summary", "fct_user_outliers",
         "fct_day_anomalies", "fct_user_spikes")
DOWNSTREAM = 4  # BuildMarts, GenerateDocs, BuildReport and the NightlyRun wrapper


@pytest.fixture(scope="module")
def snap(database, generated_lake, tmp_path_factory) -> Iterator[Pipeline]:
    lake = generated_lake("snap", users=12, days=8, end=D, seed=5)
    pipeline = Pipeline(f"t_snap_{uuid.uuid4().hex[:8]}", lake, tmp_path_factory.mktemp("snap"))
    try:
        yield pipeline
    finally:
        pipeline.drop()


def nightly(pipeline: Pipeline, date: dt.date, *extra: str) -> subprocess.CompletedProcess[str]:
    ran = pipeline.run("nightly", "--date", date.isoformat(), "--workers", "4", *extra)
    assert "Traceback" not in ran.stdout + ran.stderr, ran.stdout + ran.stderr
    return ran


def mart_runs(pipeline: Pipeline) -> dict[str, set[tuple[str, dt.date]]]:
    """The (run_id, run_date) pairs each mart shows."""
    return {mart: set(query(f'select distinct run_id, run_date from "{pipeline.schema}"."{mart}"'))
            for mart in MARTS}


def published(pipeline: Pipeline) -> list[tuple[str, dt.date]]:
    return query(f'select run_id, run_date from "{pipeline.schema}".dim_runs order by published_at')


def history_runs(pipeline: Pipeline) -> set[str]:
    return {r[0] for mart in MARTS for r in query(f'select distinct run_id from "{pipeline.schema}"."{mart}_history"')}


def assert_one_published_night(pipeline: Pipeline, date: dt.date) -> str:
    """Every mart shows one run, the same, the latest published, for `date`; returns its id."""
    runs = mart_runs(pipeline)
    assert all(len(pairs) == 1 for pairs in runs.values()), runs
    (pair,) = set.union(*runs.values())
    assert pair == published(pipeline)[-1] and pair[1] == date, (pair, published(pipeline))
    return pair[0]


def night(marts: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    """What readers see of the published night (dim_runs lists every kept night)."""
    return {name: rows for name, rows in marts.items() if name != "dim_runs"}


def incidents(pipeline) -> list[tuple]:
    """fct_incidents as readers see it, the night that first reported each incident last."""
    return query(f'select incident_id, hours, round(score::numeric, 4), kind, flows, bytes, first_run_date, is_new '
                 f'from "{pipeline.schema}".fct_incidents order by incident_id')


def without_first_report(marts: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    """The marts but fct_incidents, which incidents() compares column by column."""
    return {name: rows for name, rows in marts.items() if name != "fct_incidents"}


def test_a_run_for_another_date_makes_the_next_run_of_this_date_start_again(snap):
    first = nightly(snap, D)
    assert first.returncode == 0, first.stdout + first.stderr
    first_run = assert_one_published_night(snap, D)
    first_marts = snap.marts()
    first_incidents = incidents(snap)
    assert first_incidents and all(i[-2:] == (D, True) for i in first_incidents), first_incidents
    assert history_runs(snap) == {first_run}
    assert f"the marts show run {first_run} of {D}" in first.stdout
    # Luigi's log is in a file of the night, not on the terminal; one partial-parse file is kept.
    run_root = snap.target_root / "nightly" / snap.schema
    assert (run_root / D.isoformat() / "luigi.log").exists()
    assert "luigi-interface" not in first.stderr and "INFO" not in first.stderr
    assert [p.name for p in run_root.rglob("partial_parse.msgpack*")] == ["partial_parse.msgpack"]

    other = nightly(snap, D - dt.timedelta(days=1))
    assert other.returncode == 0 and "tasks run: 0;" not in other.stdout, other.stdout + other.stderr
    other_run = assert_one_published_night(snap, D - dt.timedelta(days=1))
    assert max(r[0] for r in query(f'select activity_date from "{snap.schema}".dim_days')) == D - dt.timedelta(days=1)

    again = nightly(snap, D)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "tasks run: 0;" not in again.stdout, "the tables hold D-1's night, yet D was skipped as complete"
    again_run = assert_one_published_night(snap, D)
    assert again_run not in (first_run, other_run)
    # The same night again, except which night first reported an incident: D-1's night, run
    # since, reported some of D's incidents before this run of D did.
    rerun_marts, before = snap.marts(), dict(first_marts)
    assert without_first_report(night(rerun_marts)) == without_first_report(night(before))
    reported_by_other = {r[0] for r in query(
        f'select incident_id from "{snap.schema}".fct_incidents_history where run_id = %s', (other_run,))}
    rerun_incidents = incidents(snap)
    assert [i[:-2] for i in rerun_incidents] == [i[:-2] for i in first_incidents]
    for incident_id, *_, first_date, is_new in rerun_incidents:
        expected = (D - dt.timedelta(days=1), False) if incident_id in reported_by_other else (D, True)
        assert (first_date, is_new) == expected, incident_id
    # History: the latest run of each night (the first run of D was superseded by the rerun).
    assert published(snap) == [(other_run, D - dt.timedelta(days=1)), (again_run, D)]
    assert history_runs(snap) == {other_run, again_run}

    # Once more: nothing to do, and the summary says why; --keep-nights 1 prunes D-1's logs.
    idle = nightly(snap, D, "--keep-nights", "1")
    assert idle.returncode == 0 and "tasks run: 0;" in idle.stdout, idle.stdout + idle.stderr
    assert "nothing to run: every step is complete for these inputs" in idle.stdout
    assert sorted(p.name for p in run_root.iterdir() if p.is_dir()) == [D.isoformat()]

    # A lake file of the window changes (a late redelivery): the date is no longer complete.
    part = next((snap.lake / "flows" / f"dt={D - dt.timedelta(days=2)}").iterdir())
    stat = part.stat()
    try:
        os.utime(part, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        assert not snap.complete(D)
    finally:
        os.utime(part, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert snap.complete(D)


def _session_processes(sid: int) -> list[int]:
    """Processes still alive in the command's session (it was started as a session leader)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            alive.append(int(entry.name))
    return alive


def hours_built(pipeline: Pipeline, date: dt.date, since: dt.datetime) -> int:
    """Hours the PCA step has built so far in an attempt started at `since` (its dbt console
    output, which each invocation starts afresh)."""
    out = pipeline.target_root / "nightly" / pipeline.schema / date.isoformat() / "PcaHours" / "dbt.out"
    try:
        if out.stat().st_mtime < since.timestamp():
            return 0  # an earlier attempt's
        return out.read_text().count(" OK created ")
    except FileNotFoundError:
        return 0


def test_sigterm_during_the_pca_hours_says_interrupted_and_the_rerun_resumes(snap):
    previous = assert_one_published_night(snap, D)
    expected = snap.marts()
    started = dt.datetime.now(dt.timezone.utc)
    process = snap.start("nightly", "--date", D.isoformat(), "--workers", "2", "--force")
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and process.poll() is None:
            if hours_built(snap, D, started) >= 2:
                break
            time.sleep(0.1)
        assert process.poll() is None, "the run ended before the test could stop it:\n" + snap.log()
        os.kill(process.pid, signal.SIGTERM)  # the main process only, as `kill PID` would
        code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    log = snap.log()
    assert code == 143, log
    assert "--force: forgot" in log and f"== nightly run {D}: INTERRUPTED by SIGTERM (exit 143)" in log, log
    assert "run the same command again to resume" in log and "Traceback" not in log, log
    deadline = time.monotonic() + 30
    while _session_processes(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _session_processes(process.pid) == [], "processes of the interrupted run are still running"
    # Everything before the PCA ran again (forced); the marts still show the previous night.
    steps = snap.markers(D)
    assert steps["StageLake"].finished_at > started
    assert "PcaHours" not in steps and "BuildMarts" not in steps
    assert assert_one_published_night(snap, D) == previous and f"the marts show run {previous}" in log
    done = {step: marker.finished_at for step, marker in steps.items()}

    # The rerun resumes at the PCA step: the steps before it are not redone.
    resumed = nightly(snap, D)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert {step: snap.markers(D)[step].finished_at for step in done} == done, "finished steps were redone"
    assert f"tasks run: {1 + DOWNSTREAM};" in resumed.stdout
    assert assert_one_published_night(snap, D) != previous
    assert night(snap.marts()) == night(expected)


def test_report_refuses_marts_that_show_two_runs(snap):
    runs = [run_id for run_id, _ in published(snap)]
    assert len(runs) == 2
    # dim_days made to show the older night, the other marts the newer.
    query(f'create or replace view "{snap.schema}".dim_days as '
          f'select * from "{snap.schema}".dim_days_history where run_id = %s', (runs[0],))
    done = subprocess.run([str(VENV_BIN / "traffic-anomalies"), "report", "--date", D.isoformat()],
                          env={**snap.env(), "TA_SCHEMA": snap.schema}, capture_output=True, text=True,
                          cwd="/", timeout=120)
    assert done.returncode != 0, done.stdout
    assert "mix nightly runs" in done.stderr and runs[0] in done.stderr and runs[1] in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr


def test_a_run_missing_from_the_history_is_not_published(sample_built, sample_lake):
    """dim_runs refuses to publish a run that a partial selection left out of the history
    tables (here: only dim_runs, under a new run id): the marts keep showing the published night."""
    before = query(f'select run_id, count(*) from "{sample_built.schema}".dim_days group by run_id')
    failed = sample_built.run("run", "--select", "dim_runs", vars={"run_id": "partial-run-1", "lake_root": str(Path(sample_lake.out_dir).resolve())},
                              check=False)
    assert failed.returncode != 0
    assert "run partial-run-1 is not published: dim_days_history holds none of its rows" in failed.stdout, failed.stdout[-2000:]
    assert query(f'select run_id, count(*) from "{sample_built.schema}".dim_days group by run_id') == before
    assert len(before) == 1 and before[0][1] > 0
    assert query(f'select count(*) from "{sample_built.schema}".dim_runs where run_id = %s', ("partial-run-1",)) == [(0,)]
