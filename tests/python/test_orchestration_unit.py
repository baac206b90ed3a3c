"""Fast tests of the nightly-run machinery that need no project models.

They use a real database (conftest's `database`: PG* variables, else the project's own
cluster), real dbt runs of a tiny throwaway
project, real Luigi runs of tiny tasks, a real luigid and a tiny SMTP server started here.
"""

from __future__ import annotations

import datetime as dt
import email
import json
import os
import socket
import socketserver
import subprocess
import sys
import textwrap
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import conftest
from conftest import query
from traffic_anomalies import PROJECT_DIR
from traffic_anomalies import tasks  # before luigi: points Luigi at the project's luigi.cfg
from traffic_anomalies import nightly, runstate
from traffic_anomalies.dbt import DbtError, run_dbt

import luigi  # noqa: E402
import luigi.execution_summary  # noqa: E402


@pytest.fixture
def schema(database: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A target schema of this test's own; dropped (with its markers) afterwards."""
    name = f"t_orch_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("TA_SCHEMA", name)
    yield name
    with runstate.connection() as conn, conn.cursor() as cur:
        cur.execute(f'drop schema if exists "{name}" cascade')
        cur.execute("select to_regclass('ta_meta.step_state')")
        if cur.fetchone()[0] is not None:
            cur.execute("delete from ta_meta.step_state where target_schema = %s", (name,))


# --- dbt: a tiny real project ----------------------------------------------------------------

TINY_FILES = {
    "dbt_project.yml": """
        name: tiny
        version: "1.0"
        config-version: 2
        profile: tiny
    """,
    "profiles.yml": """
        tiny:
          target: dev
          outputs:
            dev:
              type: postgres
              host: "{{ env_var('PGHOST') }}"
              port: "{{ env_var('PGPORT', '5432') | as_number }}"
              user: "{{ env_var('PGUSER') }}"
              password: "{{ env_var('PGPASSWORD', '') }}"
              dbname: "{{ env_var('PGDATABASE') }}"
              schema: "{{ env_var('TA_SCHEMA') }}"
              threads: 2
    """,
    "models/good.sql": "{{ config(materialized='table') }}\nselect generate_series(1, 5) as id, '{{ var('run_date') }}'::date as run_date",
    "models/broken.sql": "select no_such_column from {{ ref('good') }}",
    "models/schema.yml": """
        version: 2
        models:
          - name: good
            columns:
              - name: id
                data_tests:
                  - not_null
                  - accepted_values:
                      arguments:
                        values: [1, 2, 3]
    """,
    "macros/fail.sql": """
        {% macro fail_on_purpose(reason) %}
          {{ exceptions.raise_compiler_error("stopped on purpose: " ~ reason) }}
        {% endmacro %}
    """,
}


@pytest.fixture
def tiny_project(tmp_path: Path) -> Path:
    for name, text in TINY_FILES.items():
        path = tmp_path / "tiny" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).strip() + "\n")
    return tmp_path / "tiny"


def test_dbt_model_succeeds_and_results_are_parsed(tiny_project: Path, schema: str) -> None:
    result = run_dbt(
        ["run"], select=["good"], dbt_vars={"run_date": "2024-01-02"},
        target_path=tiny_project / "t_ok", project_dir=tiny_project,
    )
    (node,) = result.nodes
    assert (node.name, node.resource_type, node.status) == ("good", "model", "success")
    assert node.rows_affected == 5  # CREATE TABLE AS … SELECT 5
    assert node.relation_name.endswith(f'"{schema}"."good"')
    assert node.execution_time > 0
    assert result.returncode == 0 and result.log_file.exists()
    # The vars reached the model; the debug log is in the invocation's own path.
    assert query(f'select count(*), min(run_date)::text from "{schema}".good') == [(5, "2024-01-02")]
    assert "Began running node model.tiny.good" in (tiny_project / "t_ok" / "dbt.log").read_text()


def test_dbt_failing_model_raises_with_dbt_message(tiny_project: Path, schema: str) -> None:
    with pytest.raises(DbtError) as caught:
        run_dbt(["run"], select=["good", "broken"], dbt_vars={"run_date": "2024-01-02"},
                target_path=tiny_project / "t_bad", project_dir=tiny_project)
    error = caught.value
    assert error.failed_nodes == ("broken",)
    assert 'column "no_such_column" does not exist' in str(error)
    statuses = {n.name: n.status for n in error.result.nodes}
    assert statuses == {"good": "success", "broken": "error"}


def test_dbt_failing_test_raises_naming_the_test(tiny_project: Path, schema: str) -> None:
    with pytest.raises(DbtError) as caught:
        run_dbt(["build"], select=["good"], dbt_vars={"run_date": "2024-01-02"},
                target_path=tiny_project / "t_test", project_dir=tiny_project)
    error = caught.value
    assert error.failed_nodes == ("accepted_values_good_id__1__2__3",)
    assert "Got 2 results, configured to fail if != 0" in str(error)
    passed = {n.name for n in error.result.nodes if n.status in ("success", "pass")}
    assert passed == {"good", "not_null_good_id"}


def test_dbt_run_operation_error_carries_dbt_output(tiny_project: Path, schema: str) -> None:
    with pytest.raises(DbtError) as caught:
        run_dbt(["run-operation", "fail_on_purpose"], macro_args={"reason": "unit test"},
                target_path=tiny_project / "t_op", project_dir=tiny_project)
    assert "stopped on purpose: unit test" in str(caught.value)
    assert caught.value.failed_nodes == ("fail_on_purpose",)


def test_dbt_usage_error_exits_2_with_clicks_message(tiny_project: Path, schema: str) -> None:
    with pytest.raises(DbtError) as caught:
        run_dbt(["run", "--no-such-option"], target_path=tiny_project / "t_usage", project_dir=tiny_project)
    assert caught.value.result.returncode == 2  # dbt's status for an error outside the nodes
    assert "No such option '--no-such-option'" in str(caught.value)
    assert caught.value.result.nodes == ()


def test_dbt_output_is_written_once_and_the_caller_goes_on(tiny_project: Path, schema: str) -> None:
    result = run_dbt(["run"], select=["good"], dbt_vars={"run_date": "2024-01-03"},
                     target_path=tiny_project / "t_out", project_dir=tiny_project)
    output = result.log_file.read_text()
    assert output.startswith("$ dbt run ")
    assert output.count("Completed successfully") == 1
    assert "Began running node" not in output and (tiny_project / "t_out" / "dbt.log").exists()  # debug: dbt.log
    # The next invocation in the same process starts clean (dbt's flags, adapter and loggers).
    again = run_dbt(["run"], select=["good"], dbt_vars={"run_date": "2024-01-04"},
                    target_path=tiny_project / "t_out2", project_dir=tiny_project)
    assert [n.status for n in again.nodes] == ["success"]
    assert query(f'select distinct run_date::text from "{schema}".good') == [("2024-01-04",)]
    assert output == result.log_file.read_text()  # the first output file no longer written to


REUSE_PARSED_MANIFEST = """
import sys
from pathlib import Path
from traffic_anomalies import dbt as dbt_runner

project = Path(sys.argv[1])
assert dbt_runner.parse_project(target_path=project / "t_parse", dbt_vars={"run_date": "2024-01-04"},
                                project_dir=project)
# The same project, vars and environment: the step runs on the parsed manifest (no parse at all),
# with the CLI's results and exit status (1 when a node fails, and dbt's message).
result = dbt_runner.run_dbt(["run"], select=["good"], dbt_vars={"run_date": "2024-01-04"},
                            target_path=project / "t_reuse", project_dir=project)
print("reused", [n.status for n in result.nodes], "partial parsing" not in (project / "t_reuse" / "dbt.log").read_text().lower())
try:
    dbt_runner.run_dbt(["run"], select=["broken"], dbt_vars={"run_date": "2024-01-04"},
                       target_path=project / "t_reuse_bad", project_dir=project)
except dbt_runner.DbtError as exc:
    print("failed", exc.result.returncode, exc.failed_nodes, "no_such_column" in str(exc))
# Other vars: a parse of its own.
result = dbt_runner.run_dbt(["run"], select=["good"], dbt_vars={"run_date": "2024-01-05"},
                            target_path=project / "t_other", project_dir=project)
print("other vars", [n.status for n in result.nodes], "partial parsing" in (project / "t_other" / "dbt.log").read_text().lower())
# Another target schema (the environment the profile reads): a parse of its own too.
result = dbt_runner.run_dbt(["run"], select=["good"], dbt_vars={"run_date": "2024-01-04"},
                            target_path=project / "t_schema", project_dir=project,
                            env={"TA_SCHEMA": sys.argv[2] + "_b"})
print("other schema", [n.relation_name.split(".")[1] for n in result.nodes])
"""


def test_steps_reuse_the_parsed_manifest_only_for_the_same_inputs(tiny_project: Path, schema: str) -> None:
    # In a process of its own: a fresh dbt, as the nightly's is when it parses.
    ran = subprocess.run([sys.executable, "-c", REUSE_PARSED_MANIFEST, str(tiny_project), schema],
                         capture_output=True, text=True, timeout=300)
    try:
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert ran.stdout.splitlines() == [
            "reused ['success'] True",
            "failed 1 ('broken',) True",
            "other vars ['success'] True",
            f"other schema ['\"{schema}_b\"']",
        ]
        assert (tiny_project / "t_parse" / "partial_parse.msgpack").exists()
    finally:
        with runstate.connection() as conn, conn.cursor() as cur:
            cur.execute(f'drop schema if exists "{schema}_b" cascade')


def test_the_cli_imports_only_the_command_it_runs() -> None:
    """`traffic-anomalies db status` does not pay for dbt, luigi or the report; help still lists
    every command."""
    code = textwrap.dedent("""
        import sys
        from traffic_anomalies import cli
        cli.build_parser(["nightly", "--date", "2017-01-10"])
        print("nightly", "traffic_anomalies.nightly" in sys.modules)
        cli.build_parser(["db", "status"])
        print("db", "traffic_anomalies.report" in sys.modules)
        helped = cli.build_parser([]).format_help()
        print("help", all(c in helped for c in ("nightly", "lake", "bench", "evaluate", "report", "demo")))
    """)
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines() == ["nightly True", "db False", "help True"]


def test_dbt_selection_matching_nothing_is_an_error(tiny_project: Path, schema: str) -> None:
    with pytest.raises(DbtError, match="selected no nodes"):
        run_dbt(["build"], select=["int_pca_hour_99"], target_path=tiny_project / "t_none",
                project_dir=tiny_project)


# --- completion markers ----------------------------------------------------------------------

WORK_LOG: list[str] = []


class FakeStep(tasks.NightlyTask):
    """A nightly task whose work is recorded in memory instead of running dbt."""

    def work(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        WORK_LOG.append(self.task_family)
        return [], {}


class FakeUpstream(FakeStep):
    pass


class FakeDownstream(FakeStep):
    def requires(self) -> luigi.Task:
        return self.clone(FakeUpstream)


def test_markers_follow_make_rules(schema: str) -> None:
    day = dt.date(2024, 1, 2)
    WORK_LOG.clear()
    assert luigi.build([FakeDownstream(date=day)], local_scheduler=True)
    assert WORK_LOG == ["FakeUpstream", "FakeDownstream"]
    # Same date again: nothing to do.
    assert FakeDownstream(date=day).complete()
    assert luigi.build([FakeDownstream(date=day)], local_scheduler=True)
    assert WORK_LOG == ["FakeUpstream", "FakeDownstream"]
    # A new date is new work.
    assert not FakeDownstream(date=day + dt.timedelta(days=1)).complete()
    # Other vars (another lake, a forced parameter) are other work.
    assert not FakeDownstream(date=day, dbt_vars={"pca_components_by_hour": {"7": 0}}).complete()
    # Upstream rebuilt after downstream: downstream is stale.
    FakeUpstream(date=day).run()
    assert FakeUpstream(date=day).complete()
    assert not FakeDownstream(date=day).complete()
    # Upstream lost its marker (killed mid-rerun): downstream is not complete either.
    FakeDownstream(date=day).run()
    assert FakeDownstream(date=day).complete()
    FakeUpstream(date=day).output().clear()
    assert not FakeDownstream(date=day).complete()


def test_a_step_is_complete_only_for_the_date_that_last_built_it(schema: str) -> None:
    """Completion is per schema step: building another date's night replaces it."""
    day, other = dt.date(2024, 1, 2), dt.date(2024, 1, 1)
    assert luigi.build([FakeDownstream(date=day)], local_scheduler=True)
    assert FakeDownstream(date=day).complete()
    assert luigi.build([FakeDownstream(date=other)], local_scheduler=True)
    assert FakeDownstream(date=other).complete()
    assert not FakeDownstream(date=day).complete()  # its tables now hold the other date's work
    assert set(runstate.markers(schema)) == {"FakeUpstream", "FakeDownstream"}
    assert runstate.clear_markers(schema) == 2  # --force
    assert not FakeDownstream(date=other).complete()


def test_task_ids_name_the_database_schema_and_project(schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two schemas (or checkouts, or databases) on one central scheduler never share a task id."""
    day = dt.date(2024, 1, 2)
    here = tasks.nightly_run(day)
    monkeypatch.setenv("TA_SCHEMA", schema + "_other")
    elsewhere = tasks.nightly_run(day)
    assert here.task_id != elsewhere.task_id
    assert here.clone(tasks.PcaHours).task_id != elsewhere.clone(tasks.PcaHours).task_id
    monkeypatch.setenv("TA_SCHEMA", schema)
    database = os.environ.get("PGDATABASE", "")
    os.environ["PGDATABASE"] = "another_database"
    try:
        assert tasks.nightly_run(day).task_id != here.task_id
    finally:
        os.environ["PGDATABASE"] = database
    assert here.clone(tasks.BuildMarts).to_str_params()["project"] == str(PROJECT_DIR)


def test_task_parameters_name_the_lake_and_every_step_carries_them(schema: str) -> None:
    day = dt.date(2024, 1, 2)
    run = tasks.nightly_run(day, lake_root="/srv/lake_a")
    assert run.to_str_params()["lake_root"] == "/srv/lake_a"
    assert tasks.nightly_run(day, lake_root="/srv/lake_b").task_id != run.task_id
    assert tasks.nightly_run(day).to_str_params()["lake_root"] == tasks.default_lake_root()
    # The chain of steps, each a family named for its step, each with the run's parameters.
    chain, step = [], run.clone(tasks.GenerateDocs)
    while step is not None:
        chain.append(step)
        step = step.requires() if not isinstance(step, tasks.StageLake) else None
    assert [s.task_family for s in reversed(chain)] == [
        "StageLake", "LoadSeeds", "BuildStaging", "BuildPcaInput", "PcaHours", "BuildMarts", "GenerateDocs"]
    assert all(s.state_key() == s.run_label() == s.step_name == s.task_family for s in chain)
    assert {s.to_str_params()["schema"] for s in chain} == {schema}
    assert {s.to_str_params()["lake_root"] for s in chain} == {"/srv/lake_a"}
    # The 24 hours are one step, one dbt invocation: its selector holds them all.
    assert tasks.STEPS["PcaHours"].selector == "nightly_pca_hours"


def test_dbt_tasks_show_their_command_log_and_outcome_on_the_scheduler(tiny_project: Path, schema: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TA_DBT_TARGET_ROOT", str(tiny_project / "target"))
    monkeypatch.setitem(tasks.STEPS, "TinyGood", tasks.Step(("run", "--select", "good")))
    monkeypatch.setitem(tasks.STEPS, "TinyBroken", tasks.Step(("run", "--select", "broken")))

    class TinyGood(tasks.DbtTask):
        step_name = "TinyGood"
        project_dir = tiny_project

    class TinyBroken(tasks.DbtTask):
        step_name = "TinyBroken"
        project_dir = tiny_project

    day = dt.date(2024, 1, 2)
    good, broken = TinyGood(date=day), TinyBroken(date=day)
    ran = luigi.build([good, broken], local_scheduler=True, workers=1, detailed_summary=True)
    scheduler = ran.worker._scheduler
    log = good.target_path() / "dbt.out"
    message = scheduler.get_task_status_message(good.task_id)["statusMessage"]
    assert message.startswith("done in ") and message.endswith(f": 1 nodes; log {log}"), message
    assert log.read_text().startswith("$ dbt run ")
    tracked = {t["name"]: t.get("tracking_url") for t in scheduler.task_list("", "").values()}
    assert tracked["TinyGood"] == log.as_uri()
    failed = scheduler.get_task_status_message(broken.task_id)["statusMessage"]
    assert failed == f"dbt failed (broken); log {broken.target_path() / 'dbt.out'}"
    assert good.complete() and not broken.complete()


def test_old_nights_artifacts_are_pruned(tmp_path: Path) -> None:
    root = tmp_path / "nightly" / "t_schema"
    for age, night in enumerate(["2017-01-05", "2017-01-04", "2017-01-03", "2017-01-02"]):
        (root / night / "BuildMarts").mkdir(parents=True)
        os.utime(root / night, (time.time() - 3600 * age,) * 2)
    (root / "partial_parse.msgpack").write_bytes(b"x")
    nightly.prune_artifacts(root, keep=2, current={"2017-01-02"})
    # this run's night (however old its directory) and the newest other one
    assert sorted(p.name for p in root.iterdir()) == ["2017-01-02", "2017-01-05", "partial_parse.msgpack"]


# --- Luigi exit codes and failure reports ----------------------------------------------------


class FailingDbtStep(tasks.NightlyTask):
    hour = luigi.IntParameter(default=7)

    def work(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        raise RuntimeError(f"int_pca_hour_{self.hour:02d}: forced failure")


class AfterFailing(tasks.NightlyTask):
    def requires(self) -> luigi.Task:
        return FailingDbtStep(date=self.date)

    def work(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return [], {}


def test_retcode_config_is_read_from_project_luigi_cfg() -> None:
    codes = luigi.retcodes.retcode()
    assert (codes.already_running, codes.missing_data, codes.not_run) == (10, 20, 25)
    assert (codes.task_failed, codes.scheduling_error, codes.unhandled_exception) == (30, 35, 40)
    config = luigi.configuration.get_config()
    assert config.getboolean("core", "autoload_range") is False
    assert os.environ["LUIGI_CONFIG_PATH"] == str(PROJECT_DIR / "luigi.cfg")


def test_failed_task_gives_task_failed_exit_code_and_message(schema: str) -> None:
    day = dt.date(2024, 1, 2)
    outcome = nightly.build_date(AfterFailing(date=day), workers=2, scheduler={"local_scheduler": True})
    assert outcome.code == 30
    ((name, message, log),) = outcome.failures
    assert name == "FailingDbtStep" and log is None  # the summary's label; not a dbt step: no dbt log
    assert "int_pca_hour_07: forced failure" in message
    assert "\nRuntimeError: int_pca_hour_07" in message  # decoded, not JSON text
    assert outcome.not_run == ["AfterFailing"]


def test_successful_run_exits_zero_then_already_complete(schema: str) -> None:
    day = dt.date(2024, 1, 3)
    first = nightly.build_date(FakeDownstream(date=day), workers=1, scheduler={"local_scheduler": True})
    assert first.code == 0 and len(first.completed) == 2
    again = nightly.build_date(FakeDownstream(date=day), workers=1, scheduler={"local_scheduler": True})
    assert again.code == 0 and again.completed == [] and again.already_done == ["FakeDownstream"]


def test_dbt_error_message_reaches_the_scheduler(tiny_project: Path, schema: str) -> None:
    class TinyDbtStep(tasks.NightlyTask):
        def work(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
            run_dbt(["run"], select=["broken"], target_path=tiny_project / "t_luigi",
                    project_dir=tiny_project, dbt_vars={"run_date": "2024-01-02"})
            return [], {}

    outcome = nightly.build_date(TinyDbtStep(date=dt.date(2024, 1, 2)), workers=1,
                                 scheduler={"local_scheduler": True})
    assert outcome.code == 30
    ((_, message, _),) = outcome.failures
    assert "broken [error]" in message and "no_such_column" in message


# --- one run at a time ------------------------------------------------------------------------


def test_advisory_lock_refuses_a_second_run(schema: str) -> None:
    first = runstate.RunLock("nightly 2024-01-02")
    first.acquire()
    try:
        second = runstate.RunLock("nightly 2024-01-02")
        with pytest.raises(runstate.RunLockBusy) as caught:
            second.acquire()
        assert "another nightly run is in progress" in str(caught.value)
        assert f"pid={os.getpid()}" in str(caught.value)
        # Another target schema is another pipeline: not excluded.
        with runstate.RunLock("nightly 2024-01-02", schema=schema + "_other"):
            pass
    finally:
        first.release()
    # Released at once: a run that starts right after another ends is not refused.
    for _ in range(20):
        with runstate.RunLock("nightly 2024-01-02"):
            pass


def test_nightly_command_exits_already_running_while_locked(schema: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    lake = tmp_path / "lake"  # a lake holding the date: the run's input checks pass
    (lake / "flows" / "dt=2024-01-02").mkdir(parents=True)
    (lake / "flows" / "dt=2024-01-02" / "part-0000.csv").write_text("start_time,user_name,src_ip,dst_ip,dst_port,protocol,bytes\n")
    with runstate.RunLock("nightly 2024-01-02"):
        code = nightly.main(["nightly", "--date", "2024-01-02", "--lake", str(lake), "--local-scheduler"])
    assert code == 10
    assert "another nightly run is in progress" in capsys.readouterr().err


def test_nightly_command_puts_back_the_callers_signal_handlers(schema: str, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """main() run inside another program (here pytest) leaves that program's handlers as they were."""
    import signal

    lake = tmp_path / "lake"
    (lake / "flows" / "dt=2024-01-02").mkdir(parents=True)
    (lake / "flows" / "dt=2024-01-02" / "part-0000.csv").write_text("start_time,user_name,src_ip,dst_ip,dst_port,protocol,bytes\n")

    def callers_handler(signum: int, frame: Any) -> None:
        raise AssertionError("not called")

    def failing_run(*args: Any, **kwargs: Any) -> None:  # the run fails once the signals are caught
        assert signal.getsignal(signal.SIGTERM) is not callers_handler
        raise RuntimeError("boom inside the run")

    before_int, before_hook = signal.getsignal(signal.SIGINT), sys.unraisablehook
    previous_term = signal.signal(signal.SIGTERM, callers_handler)
    try:
        monkeypatch.setattr(tasks, "nightly_run", failing_run)
        code = nightly.main(["nightly", "--date", "2024-01-02", "--lake", str(lake), "--local-scheduler"])
        assert code != 0 and "boom inside the run" in capsys.readouterr().err
        assert signal.getsignal(signal.SIGTERM) is callers_handler
        assert signal.getsignal(signal.SIGINT) is before_int
        assert signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)
        assert sys.unraisablehook is before_hook
    finally:
        signal.signal(signal.SIGTERM, previous_term)


# --- the central scheduler ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TinyTask(luigi.Task):
    name = luigi.Parameter()
    done = False

    def complete(self) -> bool:
        return TinyTask.done

    def run(self) -> None:
        TinyTask.done = True


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


def test_scheduler_up_status_down_and_web_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, schema: str) -> None:
    monkeypatch.setenv("TA_LUIGI_DIR", str(tmp_path / "luigi"))
    port = _free_port()
    url = nightly.scheduler_url(port)
    assert nightly.scheduler_status(port)[0] is False
    try:
        assert "scheduler up" in nightly.scheduler_up(port)
        ok, message = nightly.scheduler_status(port)
        assert ok and "pid" in message
        assert "already up" in nightly.scheduler_up(port)

        TinyTask.done = False
        task = TinyTask(name=f"probe-{uuid.uuid4().hex[:6]}")
        assert luigi.build([task], scheduler_url=url, local_scheduler=False)
        query = urllib.parse.urlencode({"data": json.dumps({"status": "DONE"})})
        listed = _get_json(f"{url}api/task_list?{query}")["response"]
        assert task.task_id in listed
        # luigid records it in the project's database, in its own schema
        assert conftest.query("select t.name, array_agg(e.event_name order by e.ts, e.id) from ta_task_history.tasks t "
                     "join ta_task_history.task_events e on e.task_id = t.id where t.task_id = %s group by t.name",
                     (task.task_id,)) == [("TinyTask", ["PENDING", "RUNNING", "DONE"])]
        with urllib.request.urlopen(f"{url}static/visualiser/index.html", timeout=5) as resp:
            assert resp.status == 200 and b"Luigi" in resp.read()
        # A failure is reported through the central scheduler too, with its message.
        outcome = nightly.build_date(FailingDbtStep(date=dt.date(2024, 1, 5)), workers=1,
                                     scheduler={"local_scheduler": False, "scheduler_url": url})
        assert outcome.code == 30
        assert "RuntimeError: int_pca_hour_07: forced failure" in outcome.failures[0][1]
        query = urllib.parse.urlencode({"data": json.dumps({"status": "FAILED"})})
        assert FailingDbtStep(date=dt.date(2024, 1, 5)).task_id in _get_json(f"{url}api/task_list?{query}")["response"]
        # Bound to the loopback interface only.
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True)
        if listening.returncode == 0:
            local_addresses = [line.split()[3] for line in listening.stdout.splitlines()]
            assert local_addresses and all(a.startswith("127.0.0.1:") for a in local_addresses)
    finally:
        print(nightly.scheduler_down())
    assert nightly.scheduler_status(port)[0] is False
    assert (tmp_path / "luigi" / "state.pickle").exists()  # saved on shutdown


def test_scheduler_serve_runs_luigid_in_the_foreground_with_its_task_history(tmp_path: Path, schema: str) -> None:
    """`scheduler serve` (the compose file's scheduler) is luigid itself, in place of the command,
    recording tasks in the project's database like `scheduler up`, and stops on SIGTERM."""
    port = _free_port()
    url = nightly.scheduler_url(port)
    served = subprocess.Popen([sys.executable, "-m", "traffic_anomalies.cli", "scheduler", "serve",
                               "--port", str(port), "--dir", str(tmp_path / "luigi")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while not nightly.scheduler_answers(url) and time.monotonic() < deadline and served.poll() is None:
            time.sleep(0.2)
        assert nightly.scheduler_answers(url), served.communicate(timeout=5)[0] if served.poll() is not None else ""
        assert b"luigid" in Path(f"/proc/{served.pid}/cmdline").read_bytes()  # exec'd: the same process
        TinyTask.done = False
        task = TinyTask(name=f"served-{uuid.uuid4().hex[:6]}")
        assert luigi.build([task], scheduler_url=url, local_scheduler=False)
        assert conftest.query("select count(*) from ta_task_history.tasks where task_id = %s", (task.task_id,)) == [(1,)]
    finally:
        served.terminate()
        served.wait(timeout=20)
    assert not nightly.scheduler_answers(url)
    assert (tmp_path / "luigi" / "state.pickle").exists()  # saved on SIGTERM


# --- failure e-mail ----------------------------------------------------------------------------


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: greet, accept everything, keep the messages."""

    def handle(self) -> None:
        self.wfile.write(b"220 test-smtp ready\r\n")
        envelope: dict[str, Any] = {"rcpt": []}
        while line := self.rfile.readline():
            verb = line.decode().strip().split(" ")[0].upper()
            if verb in ("EHLO", "HELO"):
                self.wfile.write(b"250 test-smtp\r\n")
            elif verb == "MAIL":
                envelope["from"] = line.decode().strip()
                self.wfile.write(b"250 OK\r\n")
            elif verb == "RCPT":
                envelope["rcpt"].append(line.decode().strip())
                self.wfile.write(b"250 OK\r\n")
            elif verb == "DATA":
                self.wfile.write(b"354 end with .\r\n")
                body = []
                while (data := self.rfile.readline()) not in (b".\r\n", b""):
                    body.append(data)
                envelope["data"] = b"".join(body).decode(errors="replace")
                self.server.messages.append(dict(envelope))  # type: ignore[attr-defined]
                self.wfile.write(b"250 queued\r\n")
            elif verb == "QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 OK\r\n")


@pytest.fixture
def smtp_server() -> Iterator[socketserver.ThreadingTCPServer]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
    server.messages = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_failure_email_is_sent(tmp_path: Path, smtp_server: socketserver.ThreadingTCPServer, schema: str) -> None:
    (tmp_path / "failing_tasks.py").write_text(textwrap.dedent("""
        import datetime as dt
        import sys
        from traffic_anomalies import tasks, nightly
        import luigi

        class ForcedHourFailure(tasks.NightlyTask):
            def work(self):
                raise RuntimeError("int_pca_hour_07: forced failure for the e-mail test")

        outcome = nightly.build_date(ForcedHourFailure(date=dt.date(2024, 1, 2)), 1, {"local_scheduler": True})
        sys.exit(outcome.code)
    """))
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "LUIGI_EMAIL_RECEIVER": "oncall@example.org",
        "LUIGI_SMTP_HOST": "127.0.0.1",
        "LUIGI_SMTP_PORT": str(smtp_server.server_address[1]),
    }
    env.pop("LUIGI_CONFIG_PATH", None)  # the code finds luigi.cfg itself
    ran = subprocess.run([sys.executable, str(tmp_path / "failing_tasks.py")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 30, ran.stderr
    (message,) = smtp_server.messages  # type: ignore[attr-defined]
    assert "oncall@example.org" in " ".join(message["rcpt"])
    mail = email.message_from_string(message["data"])
    assert mail["Subject"].startswith("[traffic_anomalies]") and "ForcedHourFailure" in mail["Subject"]
    body = "".join(
        part.get_payload(decode=True).decode() for part in mail.walk() if part.get_content_type() == "text/plain"
    )
    assert "int_pca_hour_07: forced failure" in body


def test_parse_var_values() -> None:
    assert nightly.parse_var("pca_components_by_hour={\"7\": 0}") == ("pca_components_by_hour", {"7": 0})
    assert nightly.parse_var("lake_schema=raw") == ("lake_schema", "raw")
    assert nightly.parse_var("n=3") == ("n", 3)
