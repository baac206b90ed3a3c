"""Greenplum without a Greenplum: the DDL the project would send (distribution clauses,
gpfdist external tables), checked from dry runs and compiles against PostgreSQL, and the
gpfdist line reader checked row for row against the file_fdw reader."""

from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import connect, query
from traffic_anomalies import PROJECT_DIR, gpfdist
from traffic_anomalies.macro_text import lake_reader_script

GPFDIST = "gpfdist://etl-host:8081"
GREENPLUM = {"engine": "greenplum", "gpfdist_url": GPFDIST, "lake_root": "/srv/lake"}

EXPECTED_DISTRIBUTION = {
    "base_lake__flow_lines_shard_0": 'distributed by ("dt", "source_file", "line_number")',
    "base_lake__flow_lines_shard_1": 'distributed by ("dt", "source_file", "line_number")',
    "int_hourly_counts": 'distributed by ("user_name")',
    "int_pca_input": 'distributed by ("col_id")',
    "int_pca_days": "distributed replicated",
    "int_pca_users": "distributed replicated",
    "dim_days_history": "distributed replicated",
    "dim_users_history": "distributed replicated",
    "fct_pca_components_history": "distributed randomly",
    "fct_pca_summary_history": "distributed randomly",
    "dim_runs": "distributed randomly",
}


def logged_statements(output: str, marker: str) -> list[str]:
    """The statements a run-operation logged after `marker` lines (dbt's timestamps removed)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", output)
    text = re.sub(r"(?m)^\d\d:\d\d:\d\d\s+", "", text)
    chunks = text.split(marker)[1:]
    return [chunk.strip() for chunk in chunks]


def test_stage_external_sources_dry_run_emits_gpfdist_external_tables(dbt_project):
    result = dbt_project.run(
        "run-operation", "stage_external_sources",
        vars={**GREENPLUM, "dry_run": True, "lake_dates": ["2017-01-02", "2017-01-01"]},
    )
    statements = logged_statements(result.stdout, "-- dry_run ddl")
    lake = f'"{dbt_project.schema}_lake"'
    joined = "\n".join(statements)
    assert f"create schema {lake}" in joined
    for table, location in (
        ("flow_files", "flows/dt=*/*#transform=ta_listing"),
        ("flow_line_counts__20170101", "flows/dt=2017-01-01/*#transform=ta_line_counts"),
        ("flow_line_counts__20170102", "flows/dt=2017-01-02/*#transform=ta_line_counts"),
        ("flows__20170101", "flows/dt=2017-01-01/*#transform=ta_lines"),
        ("flows__20170102", "flows/dt=2017-01-02/*#transform=ta_lines"),
    ):
        ddl = next((s for s in statements if f'create readable external table {lake}."{table}"' in s), None)
        assert ddl, f"no external table {table}:\n{joined}"
        assert f"location ('{GPFDIST}/{location}')" in ddl
        assert "format 'TEXT' (delimiter E'\\t' null E'\\\\N')" in ddl
        assert "encoding 'LATIN1'" in ddl
    # gpfdist serves every location built: the configuration `traffic-anomalies gpfdist` writes
    # has each transform, and its SAFE regex (applied by gpfdist to <lake root>/<path>, glob
    # included) admits each path; nothing outside the lake's dt= directories passes
    transforms = yaml.safe_load(gpfdist.transform_config(Path("/srv/lake"), Path("/opt/ta/lake_reader.sh")))["TRANSFORMATIONS"]
    locations = re.findall(r"'" + re.escape(GPFDIST) + r"/([^#']+)#transform=(\w+)'", joined)
    assert len(locations) == 5
    for path, transform in locations:
        assert re.search(transforms[transform]["SAFE"], f"/srv/lake/{path}"), (path, transform)
    for refused in ("/srv/lake/flows/../../etc/dt=*/*", "/srv/lake/dt=*/*", "/srv/other/flows/dt=*/*",
                    "/srv/lake/flows/dt=*/x", "/srv/lake/flows/dt=2017-1-1/*", "/srv/lake/.hidden/dt=*/*"):
        assert not re.search(transforms["ta_lines"]["SAFE"], refused), refused
    view = next(s for s in statements if s.startswith(f'create view {lake}."flows"'))
    # each branch carries its day as a constant, so a filter on dt prunes the other files
    assert view.count("union all") == 1
    assert f"select '2017-01-01'::date as \"dt\", \"source_file\", \"line_number\", \"raw_line\", \"read_error\", \"line_check\", \"started_at_epoch\", \"timestamp_format\", \"activity_date\", \"hour_of_day\", \"user_name\", \"src_ip\", \"dst_ip\", \"dst_port\", \"protocol\", \"bytes\" from {lake}.\"flows__20170101\"" in view
    assert "would stage 3 lake sources" in result.stdout and "2 partitions" in result.stdout
    # a dry run touches nothing
    assert not query("select 1 from pg_namespace where nspname = %s", (f"{dbt_project.schema}_lake",))


def test_stage_external_sources_refuses_bad_gpfdist_urls(dbt_project):
    for url in ("http://etl-host:8081", "gpfdist://etl-host:8081/x'; drop table y; --"):
        result = dbt_project.run(
            "run-operation", "stage_external_sources",
            vars={**GREENPLUM, "dry_run": True, "lake_dates": ["2017-01-01"], "gpfdist_url": url}, check=False,
        )
        assert result.returncode != 0 and "gpfdist_url must be" in result.stdout


def test_table_ddl_preview_has_the_distribution_of_every_model(dbt_project):
    result = dbt_project.run("run-operation", "greenplum_table_ddl_preview", vars={"engine": "greenplum"})
    statements = logged_statements(result.stdout, "-- greenplum ddl of ")
    by_model = {s.split()[0].rsplit(".", 1)[-1]: s for s in statements}
    assert set(EXPECTED_DISTRIBUTION) <= set(by_model)
    for model, clause in EXPECTED_DISTRIBUTION.items():
        assert by_model[model].rstrip().endswith(clause + ";"), f"{model}:\n{by_model[model]}"
    undistributed = [m for m, s in by_model.items() if "distributed " not in s]
    assert not undistributed, f"tables left to Greenplum's default distribution: {undistributed}"


def test_greenplum_ddl_reaches_the_server_through_the_materialization(dbt_project):
    """PostgreSQL rejects `distributed by`: the error proves the clause is in the statement
    the table materialization sent, and dbt keeps that statement in target/run."""
    result = dbt_project.run("run", "--select", "int_pca_input", vars={"engine": "greenplum", "pca_backend": "compat"}, check=False)
    assert result.returncode != 0
    assert 'syntax error at or near "distributed"' in result.stdout
    ran = next(dbt_project.target_path.glob("run/**/int_pca_input.sql")).read_text()
    assert re.search(r'create\s+table\s+\S*"int_pca_input(__dbt_tmp)?"', ran)
    assert ran.rstrip().endswith('distributed by ("col_id");')


def test_compile_for_greenplum_keeps_the_model_sql(dbt_project):
    result = dbt_project.run(
        "compile", "--select", "int_pca_input", "int_pca_days", "int_pca_users", "fct_pca_components",
        vars={"engine": "greenplum", "pca_backend": "compat"},
    )
    assert "Compiled node" in result.stdout or result.returncode == 0
    compiled = next(dbt_project.target_path.glob("compiled/**/int_pca_input.sql")).read_text()
    assert "distributed" not in compiled  # the select is engine-neutral; DDL adds the clause


# --- the gpfdist reader against the file_fdw reader -------------------------------------------


@pytest.fixture(scope="module")
def reader(tmp_path_factory) -> Path:
    """The gpfdist transforms' lake reader, written as `traffic-anomalies gpfdist up` writes it."""
    path = tmp_path_factory.mktemp("gpfdist") / "lake_reader.sh"
    path.write_text(lake_reader_script())
    return path


@pytest.fixture(scope="module")
def staged_lake(module_dbt_project, sample_lake):
    lake_root = Path(sample_lake.out_dir).resolve()
    module_dbt_project.run("run-operation", "stage_external_sources", vars={"lake_root": str(lake_root)})
    return module_dbt_project, lake_root


def reader_rows(reader: Path, mode: str, files: list[Path], columns: str, relation: str) -> list[tuple]:
    """Run the lake reader on each file (as gpfdist would) and load its output with COPY text,
    the format of the external table."""
    out = b"".join(subprocess.run(["sh", str(reader), mode, str(f)], capture_output=True, check=True).stdout for f in files)
    with connect() as conn, conn.cursor() as cur:
        cur.execute(f"create temporary table reader_out as select {columns} from {relation} limit 0")
        cur.copy_expert("copy reader_out from stdin with (format text, encoding 'LATIN1')", io.BytesIO(out))
        cur.execute("select * from reader_out order by 1, 2, 3")
        return cur.fetchall()


def test_gpfdist_line_reader_gives_the_file_fdw_rows(staged_lake, reader):
    project, lake = staged_lake
    lake_schema = f'"{project.schema}_lake"'
    days = sorted(p.name.removeprefix("dt=") for p in (lake / "flows").glob("dt=*"))[:3]
    assert days
    for day in days:
        files = sorted((lake / "flows" / f"dt={day}").glob("*.csv*"))
        columns = "dt, source_file, line_number, raw_line, read_error, line_check, started_at_epoch, timestamp_format, activity_date, hour_of_day, user_name, src_ip, dst_ip, dst_port, protocol, bytes"
        expected = query(f"select {columns} from {lake_schema}.flows where dt = %s order by 1, 2, 3", (day,))
        got = reader_rows(reader, "lines", files, columns, f"{lake_schema}.flows")
        assert got == expected, day


def test_gpfdist_listing_and_line_counts_give_the_file_fdw_rows(staged_lake, reader):
    project, lake = staged_lake
    lake_schema = f'"{project.schema}_lake"'
    files = sorted((lake / "flows").glob("dt=*/*.csv*"))
    for mode, relation, columns in (
        ("line_counts", "flow_line_counts", "dt, source_file, line_count"),
        ("listing", "flow_files", "dt, source_file, size_bytes, modified_at_epoch"),
    ):
        expected = query(f"select {columns} from {lake_schema}.{relation} order by 1, 2")
        got = reader_rows(reader, mode, files, columns, f"{lake_schema}.{relation}")
        assert got == expected, mode
