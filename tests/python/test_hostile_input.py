"""Hostile values for every dbt var and command-line argument that becomes an identifier, a
path or SQL: each is refused with a clear message, and the database is left as it was.

dbt vars go through `dbt run-operation stage_external_sources` (the nightly's first step,
which checks every var before any DDL), in-process on one parsed manifest so that forty
invocations take seconds; TA_SCHEMA is checked while dbt parses; the command-line arguments
go through the CLI's own parsers.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import query
from traffic_anomalies import PROJECT_DIR

CANARY = Path(f"/tmp/ta_pwned_{uuid.uuid4().hex[:8]}")  # what an injected shell command would create
SHELL = f"touch {CANARY}"

# (vars, what the error message must say)
HOSTILE_VARS: list[tuple[dict, str]] = [
    ({"run_date": "2017-01-10'; drop table x; --"}, "not a date"),
    ({"run_date": "2017-13-01"}, "not a date"),
    ({"run_date": "2017-02-30"}, "not a date"),
    ({"run_date": "$$ || pg_sleep(10) || $$"}, "not a date"),
    ({"reload_dates": ["2017-01-10", "x'); drop schema public cascade; --"]}, "not a date"),
    ({"reload_dates": {"2017-01-10": 1}}, "reload_dates must"),
    ({"lake_dates": ["$$; select 1; $$"]}, "not a date"),
    ({"pca_window_days": "28; drop table x"}, "pca_window_days must"),
    ({"pca_window_days": 1}, "pca_window_days must"),
    ({"pca_components": "0.99); drop table x; --"}, "pca_components must"),
    ({"pca_components": 0}, "pca_components must"),
    ({"pca_components_by_hour": "7: 5; drop"}, "pca_components_by_hour must"),
    ({"pca_components_by_hour": {"24": 5}}, "pca_components_by_hour keys"),
    ({"pca_components_by_hour": {"7 or 1=1": 5}}, "pca_components_by_hour keys"),
    ({"pca_backend": "compat; drop schema madlib_compat cascade"}, "pca_backend must"),
    ({"engine": "postgres' --"}, "var engine must"),
    ({"outlier_threshold": "0.1 or true"}, "outlier_threshold must"),
    ({"spe_confidence": "0.999); drop table x; --"}, "spe_confidence must"),
    ({"spe_components": "1 or 1=1"}, "spe_components must"),
    ({"spike_false_alarms": "0.25) or (true"}, "spike_false_alarms must"),
    ({"day_false_alarms": "0.25 or true"}, "day_false_alarms must"),
    ({"day_false_alarms": 1}, "day_false_alarms must"),
    ({"content_false_alarms": "0.25 or true"}, "content_false_alarms must"),
    ({"content_false_alarms": 0}, "content_false_alarms must"),
    ({"outlier_components": "3; delete from x"}, "outlier_components must"),
    ({"gpfdist_url": "gpfdist://etl:8081/x'; drop table y; --"}, "gpfdist_url must"),
    ({"reporting_role": "x; drop role postgres"}, "reporting_role must"),
    ({"reporting_role": "Reporting"}, "reporting_role must"),
    ({"lake_schema": 'x"; drop schema public cascade; --'}, "var lake_schema must"),
    ({"lake_schema": "../etc"}, "var lake_schema must"),
    ({"lake_root": "/tmp/x'; drop table y; --"}, "lake_root must"),
    ({"lake_root": f"/tmp/$({SHELL})"}, "lake_root must"),
    ({"lake_root": f"/tmp/`{SHELL}`"}, "lake_root must"),
    ({"lake_root": f"/tmp/a;{SHELL}"}, "lake_root must"),
    ({"lake_root": f"/tmp/a|{SHELL}"}, "lake_root must"),
    ({"lake_root": "/tmp/a\n" + SHELL}, "lake_root must"),
    ({"lake_root": "/tmp/../etc"}, "lake_root must not contain"),
    ({"lake_root": "relative/lake"}, "lake_root must"),
    ({"lake_root": "/tmp/$$x$$"}, "lake_root must"),
    ({"history_nights": 0}, "history_nights must"),
    ({"history_nights": "7; drop table x"}, "history_nights must"),
    ({"run_id": "x'; drop table y; --"}, "run_id must"),
    ({"run_id": "a" * 64}, "run_id must"),
]

HOSTILE_SCHEMAS = ['x"; drop schema public cascade; --', "Traffic", "../../etc", "a" * 59, "1abc", "a b"]

# (argv, what stderr must say); each must exit with status 2 before touching anything.
# (--var values themselves are dbt vars: HOSTILE_VARS, refused by the command line with the
# macros' rules and messages: test_the_command_line_applies_the_macros_rules_to_each_var.)
HOSTILE_ARGS: list[tuple[list[str], str]] = [
    *[(["nightly", "--date", "2017-01-10", "--lake", lake], "lake root must") for lake in (
        f"/tmp/x;{SHELL}", f"/tmp/$({SHELL})", f"/tmp/`{SHELL}`", "/tmp/a b", "/tmp/x'y", "/tmp/a\nb",
        "/tmp/a|b", "/tmp/a&b", "/tmp/$$")],
    (["backfill", "--start", "2017-01-01", "--end", "2017-01-02", "--lake", f"/tmp/$({SHELL})"], "lake root must"),
    (["nightly", "--date", "2017-01-10; drop table x"], "expected a date"),
    (["nightly", "--date", "../../etc/passwd"], "expected a date"),
    (["nightly", "--var", "no_such_var=1"], "unknown dbt var"),
    (["nightly", "--var", "x';drop table y;--=1"], "unknown dbt var"),
    (["nightly", "--var", "run_date=2017-01-10"], "set run_date with --date"),
    (["nightly", "--var", "run_id=tonight"], "run_id is set by the nightly command"),
    (["nightly", "--var", f"lake_root=/tmp/$({SHELL})"], "set lake_root with --lake"),
    (["report", "--date", "2017-01-10", "--schema", 'x"; drop schema public cascade; --'], "--schema must"),
    (["report", "--date", "2017-01-10", "--schema", "../../tmp"], "--schema must"),
    (["report", "--date", "2017-01-10/../../x"], "not a date"),
]


def catalog_snapshot() -> list[tuple]:
    """Every schema, relation, function, role and database: what a successful attack changes."""
    return [
        *query("select 'schema', nspname, '' from pg_namespace order by 2"),
        *query("select 'relation', n.nspname || '.' || c.relname, c.relkind::text from pg_class c "
               "join pg_namespace n on n.oid = c.relnamespace order by 2"),
        *query("select 'function', n.nspname || '.' || p.proname, md5(p.prosrc) from pg_proc p "
               "join pg_namespace n on n.oid = p.pronamespace where n.nspname not in ('pg_catalog', 'information_schema') "
               "order by 2, 3"),
        *query("select 'role', rolname, rolsuper::text from pg_roles where rolname !~ '^(t|m)_' order by 2"),
        *query("select 'database', datname, '' from pg_database order by 2"),
        *query("select 'server', srvname, coalesce(array_to_string(srvoptions, ','), '') from pg_foreign_server order by 2"),
    ]


@pytest.fixture(scope="module")
def snapshot(database) -> Iterator[list[tuple]]:
    before = catalog_snapshot()
    yield before
    assert catalog_snapshot() == before, "a hostile value changed the database"
    assert not CANARY.exists(), "a hostile value ran a shell command"


class DbtInProcess:
    """dbt invocations in this process on one parsed manifest (a parse takes seconds)."""

    def __init__(self, target: Path):
        from dbt.cli.main import dbtRunner

        self.base = ["--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
                     "--target-path", str(target), "--no-use-colors"]
        self.messages: list[str] = []
        parsed = dbtRunner(callbacks=[self.collect]).invoke(["parse", *self.base])
        assert parsed.success, "\n".join(self.messages[-20:])
        self.runner = dbtRunner(manifest=parsed.result, callbacks=[self.collect])

    def collect(self, event) -> None:
        self.messages.append(event.info.msg)

    def invoke(self, *args: str) -> tuple[bool, str]:
        self.messages = []
        result = self.runner.invoke([*args, *self.base])
        return result.success, "\n".join(str(m) for m in self.messages) + str(result.exception or "")


@pytest.fixture(scope="module")
def dbt_in_process(database, tmp_path_factory) -> Iterator[DbtInProcess]:
    schema = f"t_hostile_{uuid.uuid4().hex[:8]}"
    previous = os.environ.get("TA_SCHEMA")
    os.environ["TA_SCHEMA"] = schema
    try:
        yield DbtInProcess(tmp_path_factory.mktemp("hostile_target"))
    finally:
        if previous is None:
            os.environ.pop("TA_SCHEMA", None)
        else:
            os.environ["TA_SCHEMA"] = previous


@pytest.mark.parametrize(("dbt_vars", "message"), HOSTILE_VARS, ids=[str(i) for i in range(len(HOSTILE_VARS))])
def test_hostile_dbt_var_is_refused(snapshot, dbt_in_process, dbt_vars, message):
    ok, output = dbt_in_process.invoke("run-operation", "stage_external_sources", "--vars", json.dumps(dbt_vars))
    assert not ok, f"accepted {dbt_vars}"
    assert message in output, output[-3000:]
    assert "Compilation Error" in output  # refused by a check, not by a failing statement


def test_a_plain_value_of_each_var_passes_the_checks(snapshot, dbt_in_process):
    """The checks refuse the hostile values only: the ordinary ones pass (no lake root, so
    staging stops right after the var checks, on the lake root)."""
    good = {"run_date": "2017-01-10", "reload_dates": ["2017-01-09"], "lake_dates": "2017-01-10",
            "pca_window_days": 14, "pca_components": 5, "pca_components_by_hour": {"7": 0.9, "8": 3},
            "pca_backend": "compat", "engine": "postgres", "outlier_threshold": 0.2, "spe_confidence": 0.99,
            "spe_components": 2, "outlier_components": 0.8, "reporting_role": "ta_reporting",
            "lake_root": "relative/on/purpose"}
    ok, output = dbt_in_process.invoke("run-operation", "stage_external_sources", "--vars", json.dumps(good))
    assert not ok and "lake_root must be an absolute path" in output, output[-3000:]


# The plain values of test_a_plain_value_of_each_var_passes_the_checks, and edge values on the
# accepted side of each rule, for both rule sets (the macros' and the command line's).
PLAIN_VARS = {"run_date": "2017-01-10", "reload_dates": ["2017-01-09"], "lake_dates": "2017-01-10",
              "pca_window_days": 14, "pca_components": 5, "pca_components_by_hour": {"7": 0.9, "8": 3},
              "pca_backend": "compat", "engine": "postgres", "outlier_threshold": 0.2, "spe_confidence": 0.99,
              "spe_components": 2, "outlier_components": 0.8, "reporting_role": "ta_reporting"}
EDGE_VARS = {"pca_window_days": 2, "pca_components": 1.0, "spe_components": 0.9, "outlier_components": 5,
             "spike_false_alarms": 0.001, "day_false_alarms": 0.999, "content_false_alarms": 0.5,
             "staging_tests_scope": "all", "reload_dates": "2016-02-29",
             "lake_schema": "raw_lake", "gpfdist_url": ["gpfdist://etl-1:8081", "gpfdists://etl-2"], "dry_run": True,
             "history_nights": 1, "run_id": "2017-01-10T02:30:00.a1b2"}


@pytest.mark.parametrize(("dbt_vars", "message"), HOSTILE_VARS, ids=[str(i) for i in range(len(HOSTILE_VARS))])
def test_the_command_line_applies_the_macros_rules_to_each_var(dbt_vars, message):
    """One table of values through both rule sets: validation.VAR_RULES refuses what the
    macros refuse (test_hostile_dbt_var_is_refused), with the macros' message."""
    from traffic_anomalies import validation

    ((name, value),) = dbt_vars.items()
    with pytest.raises(validation.InvalidSetting) as refused:
        validation.dbt_var_value(name, value)
    assert message in str(refused.value)


def test_the_plain_and_edge_values_pass_both_rule_sets(snapshot, dbt_in_process):
    from traffic_anomalies import validation

    for values in (PLAIN_VARS, EDGE_VARS):
        for name, value in values.items():
            validation.dbt_var_value(name, value)
        # the macros' checks pass too: staging stops after them, on the relative lake root
        ok, output = dbt_in_process.invoke("run-operation", "stage_external_sources", "--vars",
                                           json.dumps({**values, "lake_root": "relative/on/purpose"}))
        assert not ok and "lake_root must be an absolute path" in output, output[-3000:]


@pytest.mark.parametrize("schema", HOSTILE_SCHEMAS)
def test_hostile_target_schema_is_refused_while_dbt_parses(snapshot, schema, tmp_path):
    from dbt.cli.main import dbtRunner

    messages: list[str] = []
    previous = os.environ.get("TA_SCHEMA")
    os.environ["TA_SCHEMA"] = schema
    try:
        result = dbtRunner(callbacks=[lambda e: messages.append(str(e.info.msg))]).invoke(
            ["parse", "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
             "--target-path", str(tmp_path), "--no-partial-parse"])
    finally:
        os.environ["TA_SCHEMA"] = previous if previous is not None else ""
        if previous is None:
            del os.environ["TA_SCHEMA"]
    output = "\n".join(messages) + str(result.exception or "")
    assert not result.success
    assert "the target schema (env TA_SCHEMA) must be a plain lowercase identifier" in output, output[-2000:]


@pytest.mark.parametrize(("argv", "message"), HOSTILE_ARGS, ids=[str(i) for i in range(len(HOSTILE_ARGS))])
def test_hostile_command_line_argument_is_refused(snapshot, argv, message, capsys):
    from traffic_anomalies import cli

    try:
        code = cli.main(argv)
    except SystemExit as exited:  # argparse refuses the argument itself
        code = exited.code
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("schema", HOSTILE_SCHEMAS[:3])
def test_hostile_ta_schema_stops_the_nightly_run_at_once(snapshot, schema, monkeypatch, capsys):
    from traffic_anomalies import cli

    monkeypatch.setenv("TA_SCHEMA", schema)
    assert cli.main(["nightly", "--date", "2017-01-10", "--local-scheduler"]) == 2
    assert "TA_SCHEMA must be a plain lowercase identifier" in capsys.readouterr().err


def test_hostile_lake_root_from_the_environment_stops_the_nightly_run(snapshot, monkeypatch, capsys):
    from traffic_anomalies import cli

    monkeypatch.setenv("TA_SCHEMA", "t_hostile_env")
    monkeypatch.setenv("TA_LAKE_ROOT", f"/tmp/x;{SHELL}")
    assert cli.main(["nightly", "--date", "2017-01-10", "--local-scheduler"]) == 2
    assert "lake root must" in capsys.readouterr().err


def test_there_are_at_least_thirty_hostile_values():
    assert len(HOSTILE_VARS) + len(HOSTILE_SCHEMAS) + len(HOSTILE_ARGS) >= 30
