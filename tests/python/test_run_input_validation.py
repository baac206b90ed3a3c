"""Bad input is refused before any work: a run date outside the lake's days, a lake that does
not exist or has no partitions, --workers below 1, a var value its macro would refuse, an
undeclared var. Each is one line on stderr, exit status 2, and nothing touched: the schema's
relations and rows, the staged lake partitions and the run markers are as they were, and no
dbt step ran (the run's dbt target directory stays empty).

The previous state is a real load of a tiny lake into a schema of the module's own (staging,
hourly counts and the PCA input, built by dbt), the state a failed night must not damage.
Also: every var is declared once in dbt_project.yml (README's Configuration table lists exactly
those, with their defaults), and `report`/`evaluate` fail loudly instead of writing pages or
results over what was there.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DbtProject, drop_schemas, new_schema, query
from traffic_anomalies import PROJECT_DIR, validation

LAST_DAY = dt.date(2017, 2, 4)
LAKE_DAYS = 4
FIRST_DAY = LAST_DAY - dt.timedelta(days=LAKE_DAYS - 1)


@pytest.fixture(scope="module")
def lake(generated_lake) -> Path:
    return generated_lake("validation", users=6, days=LAKE_DAYS, end=LAST_DAY, seed=5, anomalies=())


@pytest.fixture(scope="module")
def loaded(database, lake, tmp_path_factory):
    """A schema holding a real load of the lake (what a previous night left)."""
    project = DbtProject(schema=new_schema("v"), target_path=tmp_path_factory.mktemp("validation_target"))
    lake_vars = {"lake_root": str(lake), "run_date": LAST_DAY.isoformat(), "pca_window_days": LAKE_DAYS}
    project.run("run-operation", "stage_external_sources", vars=lake_vars)
    project.run("run", "--select", "path:models/staging", "int_hourly_counts", "int_pca_input", "int_pca_days",
                "int_pca_users", vars=lake_vars)
    yield project
    drop_schemas(project.schema)


def state(schema: str) -> dict:
    """The schema's relations with their row counts, the lake schema's relations (partitions
    included) and the schema's run markers."""
    relations = query(
        "select n.nspname, c.relname, c.relkind::text from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname in (%s, %s) and c.relkind in ('r', 'p', 'v', 'f') order by 1, 2", (schema, f"{schema}_lake"))
    counts = {
        name: query(f'select count(*) from "{nsp}"."{name}"')[0][0]
        for nsp, name, kind in relations if nsp == schema and kind == "r"
    }
    markers = []
    if query("select to_regclass('ta_meta.step_state')") != [(None,)]:
        markers = query("select * from ta_meta.step_state where target_schema = %s order by 1, 2", (schema,))
    return {"relations": relations, "rows": counts, "markers": markers}


def run_cli(project: DbtProject, tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "TA_SCHEMA": project.schema, "TA_DBT_TARGET_ROOT": str(tmp_path / "dbt-target"),
                   "TA_LUIGI_DIR": str(tmp_path / "luigi"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "traffic_anomalies.cli", *args], env=environment, cwd="/",
                          capture_output=True, text=True, timeout=600)


def assert_refused(result: subprocess.CompletedProcess, tmp_path: Path, *needles: str) -> str:
    """Exit 2, one line on stderr saying why (no traceback), and no dbt step ran."""
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") or "error: argument" in lines[0], lines
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    target = tmp_path / "dbt-target"
    assert not target.exists() or not any(target.rglob("*")), "a dbt step ran"
    return lines[0]


# --- item 4: the run date against the lake's days ----------------------------------------------


@pytest.mark.parametrize("date", [LAST_DAY + dt.timedelta(days=39), FIRST_DAY - dt.timedelta(days=1)])
def test_a_run_date_outside_the_lakes_days_is_refused_before_any_work(loaded, lake, tmp_path, date):
    before = state(loaded.schema)
    result = run_cli(loaded, tmp_path, "nightly", "--date", date.isoformat(), "--lake", str(lake), "--local-scheduler")
    assert_refused(result, tmp_path, f"run date {date}", "outside the lake's days",
                   f"has {LAKE_DAYS} days, {FIRST_DAY} … {LAST_DAY}")
    assert state(loaded.schema) == before


def test_nightly_for_yesterday_on_a_lake_that_ended_earlier_is_refused(loaded, lake, tmp_path):
    before = state(loaded.schema)
    result = run_cli(loaded, tmp_path, "nightly", "--lake", str(lake), "--local-scheduler")
    yesterday = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    assert_refused(result, tmp_path, f"run date {yesterday}", f"{FIRST_DAY} … {LAST_DAY}")
    assert state(loaded.schema) == before


def test_a_backfill_past_the_lakes_last_day_is_refused(loaded, lake, tmp_path):
    before = state(loaded.schema)
    result = run_cli(loaded, tmp_path, "backfill", "--start", LAST_DAY.isoformat(),
                     "--end", (LAST_DAY + dt.timedelta(days=2)).isoformat(), "--lake", str(lake), "--local-scheduler")
    assert_refused(result, tmp_path, "outside the lake's days")
    assert state(loaded.schema) == before


# --- item 5: a lake that is not there ----------------------------------------------------------


def no_lake(tmp: Path) -> Path:
    return tmp / "nonexistent" / "lake"


def empty_lake(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def lake_without_partitions(tmp: Path) -> Path:
    root = tmp / "unpartitioned"
    for junk in ("flows/2017-01-01/part-0000.csv", "flows/dt=2017-01-02/README", "flows/dt=someday/part-0000.csv",
                 "flows/part-0000.csv.gz", "dt=2017-01-03/part-0000.csv"):
        (root / junk).parent.mkdir(parents=True, exist_ok=True)
        (root / junk).write_text("start_time,user_name,src_ip,dst_ip,dst_port,protocol,bytes\n")
    (root / "flows" / "dt=2017-01-04").mkdir()  # a partition directory without files
    return root


@pytest.mark.parametrize(("make", "message"), [
    (no_lake, "does not exist"), (empty_lake, "has no partitions"), (lake_without_partitions, "has no partitions")])
def test_a_lake_that_is_missing_or_has_no_partitions_is_refused_and_nothing_is_dropped(loaded, tmp_path, make, message):
    root = make(tmp_path)
    before = state(loaded.schema)
    assert any(kind == "f" and "__" in name for _, name, kind in before["relations"])  # staged partitions
    result = run_cli(loaded, tmp_path, "nightly", "--date", LAST_DAY.isoformat(), "--lake", str(root),
                     "--local-scheduler")
    assert_refused(result, tmp_path, f"lake {root} {message}")
    assert state(loaded.schema) == before


def test_staging_a_lake_without_partitions_with_dbt_drops_nothing(loaded, lake, tmp_path):
    """For dbt used directly: the staging macro refuses too, and its drops roll back."""
    before = state(loaded.schema)
    os.chmod(tmp_path, 0o755)
    root = empty_lake(tmp_path)
    failed = loaded.run("run-operation", "stage_external_sources", check=False, vars={"lake_root": str(root)})
    assert failed.returncode != 0 and f"lake {root} has no partitions" in failed.stdout, failed.stdout[-2000:]
    assert state(loaded.schema) == before


# --- item 6: workers ---------------------------------------------------------------------------


@pytest.mark.parametrize("count", ["0", "-3", "two"])
def test_workers_below_one_are_refused(loaded, lake, tmp_path, count):
    before = state(loaded.schema)
    result = run_cli(loaded, tmp_path, "nightly", "--date", LAST_DAY.isoformat(), "--workers", count,
                     "--lake", str(lake), "--local-scheduler")
    line = assert_refused(result, tmp_path, "argument --workers: workers must be an integer >= 1")
    assert line.count("workers must") == 1
    assert state(loaded.schema) == before


# --- items 7 and 8: vars -----------------------------------------------------------------------


@pytest.mark.parametrize(("setting", "message"), [
    ("pca_components=1; drop table x", 'pca_components must be an integer k >= 1 or a proportion in (0, 1], got: "1; drop table x"'),
    ("spe_components=0", "spe_components must be an integer k >= 1 or a proportion in (0, 1], got: 0"),
    ("pca_window_days=NaN", 'pca_window_days must be an integer >= 2, got: "NaN"'),
    ('pca_components_by_hour={"24": 5}', 'pca_components_by_hour keys must be hours 0-23, got: "24"'),
    ("spike_false_alarms=1.5", "spike_false_alarms must be a number in (0, 1), got: 1.5"),
    ("reload_dates=2017-02-30", 'not a date (YYYY-MM-DD): "2017-02-30"'),
    ("spe_componets=1", "unknown dbt var 'spe_componets'"),
])
def test_a_bad_var_value_is_refused_once_before_the_first_dbt_step(loaded, lake, tmp_path, setting, message):
    before = state(loaded.schema)
    result = run_cli(loaded, tmp_path, "nightly", "--date", LAST_DAY.isoformat(), "--var", setting,
                     "--lake", str(lake), "--local-scheduler")
    line = assert_refused(result, tmp_path, message)
    assert line.count(message) == 1
    assert state(loaded.schema) == before


def test_the_documented_vars_read_through_a_variable_are_accepted(loaded, lake, tmp_path):
    """spe_components and outlier_components were refused as unknown: here they pass the var
    checks, and the run stops at the next check (its date), still before any work."""
    result = run_cli(loaded, tmp_path, "nightly", "--date", (LAST_DAY + dt.timedelta(days=1)).isoformat(),
                     "--var", "spe_components=0.9", "--var", "outlier_components=5", "--lake", str(lake),
                     "--local-scheduler")
    assert_refused(result, tmp_path, "outside the lake's days")


def declared_in_sources() -> set[str]:
    """Var names the models and macros read by a literal name (the declaration must hold
    them all; vars read through a variable are in the declaration by hand)."""
    pattern = re.compile(r"""var\(\s*['"]([a-z_][a-z0-9_]*)['"]|[^_]component_selection\(\s*['"]([a-z_]+)['"]""")
    names: set[str] = set()
    for folder in ("models", "macros", "tests", "analyses"):
        for path in (PROJECT_DIR / folder).rglob("*"):
            if path.suffix in (".sql", ".yml") and path.is_file():
                for literal, through in pattern.findall(path.read_text(errors="replace")):
                    names.add(literal or through)
    return names


def test_every_var_is_declared_once_with_a_rule():
    declared = validation.declared_vars()
    assert declared_in_sources() <= set(declared), declared_in_sources() - set(declared)
    assert set(validation.VAR_RULES) == set(declared)
    for name, default in declared.items():
        if name != "lake_root":  # its default is the environment's (none here): see test below
            validation.dbt_var_value(name, default)  # every default passes its own rule
    assert declared["spe_components"] == 1 and declared["outlier_components"] == 3
    assert "default 0.9 of the variance" not in (PROJECT_DIR / "macros" / "_macros.yml").read_text()


def readme_var_table() -> dict[str, str]:
    text = (PROJECT_DIR / "README.md").read_text()
    section = text[text.index("**dbt vars**"):]
    section = section[:section.index("\n\n", section.index("| var |"))]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([a-z_]+)`", cells[0])
        if match:
            rows[match.group(1)] = cells[1]
    return rows


def shown(default) -> str:
    if isinstance(default, str) and "env_var(" in default:
        return "`$" + re.search(r"env_var\('(\w+)'", default).group(1) + "`"
    return f"`{default if isinstance(default, str) else json.dumps(default)}`"


def test_the_readme_lists_exactly_the_declared_vars_with_their_defaults():
    table = readme_var_table()
    declared = validation.declared_vars()
    assert list(table) == list(declared)
    assert table == {name: shown(default) for name, default in declared.items()}


def test_the_lake_root_default_is_the_environments(dbt_project, monkeypatch):
    """Its default ('lake' before) failed the project's own absolute-path check: now it is
    env TA_LAKE_ROOT, and unset it is refused with a message saying how to set it."""
    assert validation.declared_vars()["lake_root"] == "{{ env_var('TA_LAKE_ROOT', '') }}"
    monkeypatch.delenv("TA_LAKE_ROOT", raising=False)
    failed = dbt_project.run("run-operation", "stage_external_sources", check=False)
    assert failed.returncode != 0 and "lake_root is not set: pass var lake_root" in failed.stdout, failed.stdout[-2000:]


# --- item 11: report and evaluate --------------------------------------------------------------


def test_a_report_for_a_date_never_built_fails_without_writing_a_page(sample_built, tmp_path):
    page = PROJECT_DIR / "target" / "report" / "2016-01-01"
    assert not page.exists()
    result = run_cli(sample_built, tmp_path, "report", "--date", "2016-01-01", "--schema", sample_built.schema)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "2016-01-01" in lines[0] and "never built" in lines[0], result.stderr
    assert not page.exists()


def test_evaluate_refuses_zero_users_and_keeps_the_previous_results(tmp_path):
    out = tmp_path / "evaluation.json"
    out.write_text('{"previous": true}\n')
    out.with_suffix(".md").write_text("previous\n")
    result = subprocess.run([sys.executable, "-m", "traffic_anomalies.cli", "evaluate", "--users", "0", "--out", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "argument --users: must be an integer >= 1" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert out.read_text() == '{"previous": true}\n' and out.with_suffix(".md").read_text() == "previous\n"


def test_evaluate_exits_non_zero_when_its_runs_fail_and_keeps_the_previous_results(tmp_path):
    out = tmp_path / "evaluation.json"
    out.write_text('{"previous": true}\n')
    out.with_suffix(".md").write_text("previous\n")
    # 30 spikes cannot be placed on one user (one per hour of day): every run fails
    result = subprocess.run(
        [sys.executable, "-m", "traffic_anomalies.cli", "evaluate", "--users", "1", "--days", "3", "--window-days", "2", "--seeds", "1", "2",
         "--scenarios", "spike:5:30", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout[-2000:]
    assert result.stdout.count("FAILED") == 2, result.stdout
    assert "2 of 2 runs failed" in result.stderr and "was not written" in result.stderr, result.stderr
    assert out.read_text() == '{"previous": true}\n' and out.with_suffix(".md").read_text() == "previous\n"
