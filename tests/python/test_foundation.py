"""The foundation against the real database: lake → external tables → staging → hourly counts."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import re
import shutil
import subprocess
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import VENV_BIN, connect, query, server_readable_dir

# The generator's malformed kinds and the reason staging must give each.
EXPECTED_REASONS = {
    "bad_timestamp": {"bad_timestamp"},
    "empty_user": {"empty_user"},
    "wrong_column_count": {"wrong_column_count"},
    "non_numeric_bytes": {"non_numeric_bytes"},
    "negative_bytes": {"negative_bytes"},
    "garbage_bytes": {"invalid_utf8", "control_characters", "wrong_column_count", "bad_timestamp"},
}


def expected_hourly_counts(lake: Path, malformed: set[tuple[str, str, int]]) -> Counter:
    """Flows per (day, hour, user), counted in Python straight from the files."""
    counts: Counter = Counter()
    for path in sorted((lake / "flows").glob("dt=*/*.csv*")):
        dt = path.parent.name.removeprefix("dt=")
        with gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="") as handle:
            for number, line in enumerate(handle, start=1):
                if number == 1 or (dt, path.name, number) in malformed:
                    continue
                fields = line.rstrip("\n").split(",")
                stamp = fields[0]
                when = (
                    datetime.fromtimestamp(float(stamp), tz=timezone.utc)
                    if stamp[:1].isdigit() and "-" not in stamp
                    else datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
                )
                counts[(when.date().isoformat(), when.hour, fields[1])] += 1
    return counts


@pytest.fixture(scope="module")
def staged(module_dbt_project, sample_lake):
    project = module_dbt_project
    lake_root = str(Path(sample_lake.out_dir).resolve())
    project.run("run-operation", "stage_external_sources", vars={"lake_root": lake_root})
    project.run("build", "--selector", "nightly_staging", vars={"lake_root": lake_root})
    return project, Path(lake_root)


def malformed_lines(lake: Path) -> dict[tuple[str, str, int], str]:
    with open(lake / "malformed.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    out = {}
    for row in rows:
        path = Path(row["file"])
        dt = path.parent.name.removeprefix("dt=")
        out[(dt, path.name, int(row["line_number"]))] = row["kind"]
    return out


def test_every_malformed_line_is_quarantined_with_its_reason(staged):
    project, lake = staged
    expected = malformed_lines(lake)
    assert expected, "the sample lake should contain malformed lines"
    got = {
        (dt.isoformat(), source_file, line_number): reason
        for dt, source_file, line_number, reason in query(
            f"select dt, source_file, line_number, reject_reason from {project.relation('stg_flows__quarantine')}"
        )
    }
    assert set(got) == set(expected)
    wrong = {key: (expected[key], got[key]) for key in expected if got[key] not in EXPECTED_REASONS[expected[key]]}
    assert not wrong, f"unexpected reasons: {list(wrong.items())[:10]}"


def test_every_valid_line_reaches_stg_flows_once(staged):
    project, lake = staged
    malformed = malformed_lines(lake)
    total_lines = sum(
        count for (count,) in query(f"select sum(line_count) from {project.schema}_lake.flow_line_counts")
    )
    files = len(list((lake / "flows").glob("dt=*/*.csv*")))
    (flows,) = query(f"select count(*) from {project.relation('stg_flows')}")[0]
    (distinct,) = query(
        f"select count(distinct (dt, source_file, line_number)) from {project.relation('stg_flows')}"
    )[0]
    assert flows == distinct == total_lines - files - len(malformed)


def test_hourly_counts_match_an_independent_count_of_the_files(staged):
    project, lake = staged
    expected = expected_hourly_counts(lake, set(malformed_lines(lake)))
    got = Counter({
        (d.isoformat(), h, u): c
        for d, h, u, c in query(
            f"select activity_date, hour_of_day, user_name, flow_count from {project.relation('int_hourly_counts')}"
        )
    })
    assert got == expected


def test_both_timestamp_forms_are_parsed(staged):
    project, _ = staged
    forms = dict(query(f"select timestamp_format, count(*) from {project.relation('stg_flows')} group by 1"))
    assert forms.get("iso8601", 0) > 0 and forms.get("epoch", 0) > 0


def test_a_second_build_loads_nothing_twice(staged):
    project, lake = staged
    before = query(
        f"select (select count(*) from {project.relation('base_lake__flow_lines')}),"
        f" (select sum(flow_count) from {project.relation('int_hourly_counts')})"
    )
    project.run("build", "--selector", "nightly_staging", vars={"lake_root": str(lake)})
    after = query(
        f"select (select count(*) from {project.relation('base_lake__flow_lines')}),"
        f" (select sum(flow_count) from {project.relation('int_hourly_counts')})"
    )
    assert before == after


def test_the_staging_shards_split_the_days_and_are_built_at_once(staged):
    """Each lake day lives in exactly one shard (day number modulo 2), base_lake__flow_lines is
    their union, and dbt builds the two shards at the same time (one backend each)."""
    project, lake = staged
    days = sorted(p.name.removeprefix("dt=") for p in (lake / "flows").glob("dt=*"))
    # the views over the shards too: a full refresh replaces the shard tables (drop cascade)
    project.run("run", "--select", "path:models/staging", "--full-refresh", vars={"lake_root": str(lake)})
    timing = {}
    for result in project.run_results()["results"]:
        name = result["unique_id"].split(".")[-1]
        execute = next(t for t in result["timing"] if t["name"] == "execute")
        timing[name] = (datetime.fromisoformat(execute["started_at"].rstrip("Z")),
                        datetime.fromisoformat(execute["completed_at"].rstrip("Z")))
    (start_0, end_0), (start_1, end_1) = timing["base_lake__flow_lines_shard_0"], timing["base_lake__flow_lines_shard_1"]
    assert start_0 < end_1 and start_1 < end_0, timing  # the two builds overlap
    by_shard = {}
    for shard in (0, 1):
        rows = query(f"select dt::text, count(*) from {project.relation(f'base_lake__flow_lines_shard_{shard}')} group by 1")
        by_shard[shard] = dict(rows)
        assert rows and all(datetime.fromisoformat(d).toordinal() % 2 == shard for d, _ in rows), (shard, rows)
    assert sorted([*by_shard[0], *by_shard[1]]) == days
    union = dict(query(f"select dt::text, count(*) from {project.relation('base_lake__flow_lines')} group by 1"))
    assert union == {**by_shard[0], **by_shard[1]}


def test_a_day_in_the_wrong_shard_fails_its_test(staged):
    """days_of_shard: a row of a shard-0 day copied into shard 1 fails shard 1's test (naming
    the failing rows), and only that one; removed again, the test passes."""
    project, lake = staged
    shard_0, shard_1 = (project.relation(f"base_lake__flow_lines_shard_{n}") for n in (0, 1))
    scope = {"lake_root": str(lake), "staging_tests_scope": "all"}
    with connect() as conn, conn.cursor() as cur:
        cur.execute(f"insert into {shard_1} select * from {shard_0} where line_number = 1 limit 1")
        assert cur.rowcount == 1
    try:
        failed = project.run("test", "--select", "test_name:days_of_shard", vars=scope, check=False)
        assert failed.returncode != 0
        assert "Failure in test days_of_shard_base_lake__flow_lines_shard_1_dt__1" in failed.stdout
        assert "Got 1 result" in failed.stdout
        assert "Failure in test days_of_shard_base_lake__flow_lines_shard_0" not in failed.stdout
    finally:
        with connect() as conn, conn.cursor() as cur:
            cur.execute(f"delete from {shard_1} where mod((dt - date '0001-01-01') + 1, 2) <> 1")
    project.run("test", "--select", "test_name:days_of_shard", vars=scope)


@pytest.mark.parametrize(
    "lake_root",
    ["relative/path", "/tmp/x'; drop table y; --", "/tmp/$(touch /tmp/pwned)", "/tmp/../etc", "/tmp/a b"],
)
def test_hostile_lake_root_is_refused(dbt_project, lake_root):
    result = dbt_project.run("run-operation", "stage_external_sources", vars={"lake_root": lake_root}, check=False)
    assert result.returncode != 0
    assert "lake_root must" in result.stdout
    assert not Path("/tmp/pwned").exists()
    assert query("select count(*) from pg_namespace where nspname = %s", (f"{dbt_project.schema}_lake",)) == [(0,)]


def test_db_env_prints_exports_for_the_database_in_use(database):
    out = subprocess.run([str(VENV_BIN / "traffic-anomalies"), "db", "env"], capture_output=True, text=True, check=True)
    lines = dict(line.removeprefix("export ").split("=", 1) for line in out.stdout.splitlines())
    assert set(lines) >= {"PGHOST", "PGPORT", "PGUSER", "PGDATABASE"}
    assert lines["PGDATABASE"] == database["PGDATABASE"]


def test_db_up_is_idempotent_and_status_reports_up(database):
    for _ in range(2):
        up = subprocess.run([str(VENV_BIN / "traffic-anomalies"), "db", "up"], capture_output=True, text=True)
        assert up.returncode == 0, up.stderr
    status = subprocess.run([str(VENV_BIN / "traffic-anomalies"), "db", "status"], capture_output=True, text=True)
    assert status.returncode == 0 and " is up" in status.stdout


def executed_partitions(sql: str) -> set[str]:
    """The line-count partitions (days) that running `sql` actually reads."""
    plan = [row[0] for row in query("explain (analyze, costs off, timing off) " + sql)]
    return {re.search(r"flow_line_counts__\d{8}", line)[0] for line in plan
            if "flow_line_counts__" in line and "never executed" not in line}


def test_reconciliation_counts_only_the_days_it_checks_and_catches_a_missing_line(dbt_project, generated_lake):
    """A nightly load's line-count reconciliation decompresses only the days that load wrote
    (the counts are partitioned by day and the test reads each of its days through a lateral
    subquery: PostgreSQL prunes the other partitions as it runs), and it fails on a file
    holding a line the model does not (here: appended after that day was loaded)."""
    source = generated_lake("recon", users=30, days=3, end=dt.date(2017, 1, 3), seed=5)
    lake = server_readable_dir("recon")
    try:
        shutil.copytree(source, lake, dirs_exist_ok=True)
        lake_vars = {"lake_root": str(lake)}
        dbt_project.run("run-operation", "stage_external_sources", vars=lake_vars)
        for day in ("2017-01-02", "2017-01-03"):  # days 1-2, then day 3: the latest load
            dbt_project.run("run", "--select", "path:models/staging", vars={**lake_vars, "run_date": day})
        changed = sorted((lake / "flows" / "dt=2017-01-01").glob("*.csv*"))[0]
        extra = b"1483228800,someone,10.0.0.1,10.0.0.2,80,443,6,1,60\n"
        with open(changed, "ab") as handle:
            handle.write(gzip.compress(extra) if changed.name.endswith(".gz") else extra)

        def reconcile(**extra_vars) -> tuple[int, list[str], str]:
            """Run the reconciliation test alone: exit code, test statuses, its compiled SQL."""
            ran = dbt_project.run("test", "--select", "test_name:lines_reconcile_with_lake", check=False,
                                  vars={**lake_vars, "run_date": "2017-01-03", **extra_vars})
            statuses = [r["status"] for r in dbt_project.run_results()["results"] if r["unique_id"].startswith("test.")]
            compiled = next(dbt_project.target_path.glob("compiled/**/lines_reconcile_with_lake*.sql")).read_text()
            return ran.returncode, statuses, compiled

        code, statuses, compiled = reconcile()
        assert (code, statuses) == (0, ["pass"])
        assert executed_partitions(compiled) == {"flow_line_counts__20170103"}

        code, statuses, compiled = reconcile(staging_tests_scope="all")
        assert (code, statuses) == (1, ["fail"])
        assert executed_partitions(compiled) == {f"flow_line_counts__2017010{d}" for d in (1, 2, 3)}
        [(day, name, staged, counted)] = query(compiled)
        assert (day, name, counted) == (dt.date(2017, 1, 1), changed.name, staged + 1)
    finally:
        shutil.rmtree(lake, ignore_errors=True)


def test_the_reject_reason_catalogue_is_the_staging_checks_list() -> None:
    """seeds/lake/lake_reject_reasons.csv lists exactly the reasons the staging checks write
    (macros/staging/flow_lines_shard_model.sql), in the order they are applied; the staging
    models' reject_reason is tested against the seed, so a reason added to the checks without
    the catalogue fails the build, and this test catches one dropped from the checks."""
    from traffic_anomalies import PROJECT_DIR

    checks = (PROJECT_DIR / "macros" / "staging" / "flow_lines_shard_model.sql").read_text()
    written = [r for r in re.findall(r"then '([a-z0-9_]+)'", checks)
               if r not in {"iso8601", "epoch", "rejected", "header"}]  # formats and line_status
    with (PROJECT_DIR / "seeds" / "lake" / "lake_reject_reasons.csv").open(newline="") as f:
        catalogue = sorted(csv.DictReader(f), key=lambda row: int(row["check_order"]))
    assert [row["reject_reason"] for row in catalogue] == written
    assert [int(row["check_order"]) for row in catalogue] == list(range(1, len(written) + 1))
    assert all(row["description"].strip() for row in catalogue)
