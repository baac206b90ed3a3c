"""The nightly on a real Greenplum 7 cluster (1 coordinator + 2 segments) through gpfdist,
against the PostgreSQL run of the same lake.

The cluster comes from ../shared/greenplum (env TA_GREENPLUM_DIR): its `gp-cluster` installs
the engine and starts a throwaway cluster on a free port base under a scratch directory, once
for this module; it is stopped and removed at the end. gpfdist is started by the project's own
command (`traffic-anomalies gpfdist up`). The job runs as a non-superuser role whose only
special right is CREATEEXTTABLE for gpfdist. Without the build (or as non-root, which
gp-cluster needs) the module skips with one line naming what is missing.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import psycopg2
import pytest

from conftest import DbtProject, query
from traffic_anomalies import PROJECT_DIR
from traffic_anomalies.macro_text import lake_reader_script

GREENPLUM_DIR = Path(os.environ.get("TA_GREENPLUM_DIR", PROJECT_DIR.parent / "shared" / "greenplum"))
GP_CLUSTER = GREENPLUM_DIR / "gp-cluster"
GPHOME = Path("/usr/local/greenplum-7")  # where gp-cluster installs the engine
JOB_ROLE = "ta_gp_job"
DATABASE = "ta_gp"
TOLERANCE = 1e-7
RUN_DATE = dt.date(2017, 1, 10)  # test_nightly's lake (conftest's nightly_reference)
# Columns that name or time the run rather than hold a result: each attempt has its own run id.
VOLATILE_NAME_PARTS = ("time", "_ms", "built_at", "loaded_at", "run_id", "invocation_id", "published_at")

if not GP_CLUSTER.is_file():
    pytest.skip(f"Greenplum tests: no Greenplum build at {GREENPLUM_DIR} (set TA_GREENPLUM_DIR)",
                allow_module_level=True)
if os.geteuid() != 0:
    pytest.skip("Greenplum tests: gp-cluster must run as root", allow_module_level=True)


@dataclass
class Cluster:
    port: int
    scratch: Path

    def connect(self, user: str = "gpadmin", database: str = DATABASE):
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=user, dbname=database)
        conn.autocommit = True
        return conn

    def query(self, sql: str, params: tuple = (), user: str = "gpadmin") -> list[tuple]:
        with self.connect(user) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def job_env(self, schema: str, target_root: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("PG") and k not in ("TA_SCHEMA", "LUIGI_CONFIG_PATH")}
        return {**env, "PGHOST": "127.0.0.1", "PGPORT": str(self.port), "PGUSER": JOB_ROLE,
                "PGDATABASE": DATABASE, "TA_SCHEMA": schema, "TA_DBT_TARGET_ROOT": str(target_root),
                # a statement that waits for ever (the shared-scan deadlock) fails instead
                "PGOPTIONS": "-c statement_timeout=300s",
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("", port))
        except OSError:
            return False
    return True


def _free_ports(count: int) -> int:
    """The first of `count` consecutive free TCP ports, from TA_TEST_GREENPLUM_PORT (default
    7400) on: machines running several test suites at once give each its own range."""
    start = int(os.environ.get("TA_TEST_GREENPLUM_PORT", "7400"))
    for base in range(start, start + 1600, 10):
        if all(_free(base + i) for i in range(count)):
            return base
    raise AssertionError("no free ports for the Greenplum cluster")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """gp-cluster install, then a 1 + 2 segment cluster of our own; stopped and removed after."""
    installed = subprocess.run([str(GP_CLUSTER), "install"], capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stderr[-3000:]
    scratch = Path(tempfile.mkdtemp(prefix="ta-greenplum-", dir="/tmp"))
    scratch.chmod(0o755)  # gpadmin must reach the data directory
    base = _free_ports(5)  # coordinator, two segments, two gpfdist
    data = scratch / "data"
    try:
        up = subprocess.run([str(GP_CLUSTER), "up", str(base), str(data)], capture_output=True,
                            text=True, timeout=600)
        assert up.returncode == 0, up.stderr[-3000:]
        gp = Cluster(port=base, scratch=scratch)
        conn = gp.connect(database="postgres")  # autocommit, outside `with`: CREATE DATABASE
        with conn.cursor() as cur:
            cur.execute(f"create database {DATABASE}")
            # the job role: no superuser; gpfdist external tables, and its own schemas in the database
            cur.execute(f"create role {JOB_ROLE} login createexttable (type = 'readable', protocol = 'gpfdist')")
            cur.execute(f"grant connect, temporary, create on database {DATABASE} to {JOB_ROLE}")
        conn.close()
        yield gp
    finally:
        subprocess.run([str(GP_CLUSTER), "down", str(data)], capture_output=True, timeout=120)
        shutil.rmtree(scratch, ignore_errors=True)


def _ta(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "traffic_anomalies.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def gpfdist_env(cluster: Cluster) -> Iterator[dict[str, str]]:
    env = {**os.environ, "TA_GPFDIST_DIR": str(cluster.scratch / "gpfdist")}
    yield env
    for port in {cluster.port + 3, cluster.port + 4}:
        _ta("gpfdist", "down", "--port", str(port), env=env)


def gpfdist_up(env: dict[str, str], lake: Path, port: int) -> str:
    started = _ta("gpfdist", "up", "--lake", str(lake), "--port", str(port), "--user", "gpadmin",
                  "--host", "127.0.0.1", "--gpfdist", str(GPHOME / "bin" / "gpfdist"), env=env)
    assert started.returncode == 0, started.stderr
    return started.stdout.strip()


@dataclass
class GreenplumRun:
    schema: str
    reference: Any  # conftest's nightly_reference: the PostgreSQL run of the same lake
    started: dt.datetime  # when the nightly began (the days before were loaded earlier)
    ran: subprocess.CompletedProcess
    url: str


@dataclass
class GreenplumDbt(DbtProject):
    """conftest's dbt runner (the warm launcher), connected to the cluster as the job role."""

    cluster_env: dict[str, str] | None = None

    def env(self) -> dict[str, str]:
        return dict(self.cluster_env or {})


@pytest.fixture(scope="module")
def greenplum_run(cluster, gpfdist_env, nightly_reference, tmp_path_factory) -> GreenplumRun:
    """The lake up to the day before the reference's date loaded first (the staging models, as
    the nightly's first steps do), then the nightly for its date, incremental: the end state
    must be the PostgreSQL run's, which built the same lake in one night."""
    url = gpfdist_up(gpfdist_env, nightly_reference.lake, cluster.port + 3)
    schema = "ta_night"  # Greenplum reserves the prefix gp_ for its own schemas
    target = tmp_path_factory.mktemp("greenplum_target")
    env = cluster.job_env(schema, target)
    earlier = GreenplumDbt(schema=schema, target_path=target / "earlier", cluster_env=env)
    earlier_vars = {"gpfdist_url": url, "lake_root": str(nightly_reference.lake),
                    "run_date": (RUN_DATE - dt.timedelta(days=1)).isoformat()}
    earlier.run("run-operation", "stage_external_sources", vars=earlier_vars)
    earlier.run("build", "--selector", "nightly_staging", vars=earlier_vars)
    started = cluster.query("select clock_timestamp()")[0][0]
    ran = subprocess.run(
        [sys.executable, "-m", "traffic_anomalies.nightly", "nightly", "--date", RUN_DATE.isoformat(),
         "--workers", "4", "--lake", str(nightly_reference.lake), "--local-scheduler",
         "--var", f"gpfdist_url={url}"],
        env=env, cwd="/", capture_output=True, text=True, timeout=900)
    assert ran.returncode == 0, f"{ran.stdout[-6000:]}\n{ran.stderr[-3000:]}"
    return GreenplumRun(schema, nightly_reference, started, ran, url)


def test_gpfdist_command_starts_stops_and_reports(cluster, gpfdist_env, greenplum_run) -> None:
    port = str(cluster.port + 3)
    status = _ta("gpfdist", "status", "--port", port, env=gpfdist_env)
    assert status.returncode == 0 and str(greenplum_run.reference.lake) in status.stdout, status.stdout
    assert greenplum_run.url == f"gpfdist://127.0.0.1:{port}"
    config = (cluster.scratch / "gpfdist" / port / "transforms.yaml").read_text()
    # the reader, written beside the configuration from the macros file_fdw runs too (readable by
    # gpfdist's user wherever the checkout is)
    reader = cluster.scratch / "gpfdist" / port / "lake_reader.sh"
    assert f"/bin/sh {reader} lines %filename%" in config
    assert reader.read_text() == lake_reader_script()
    # a second `up` for the same lake finds it running; for another lake it refuses
    assert gpfdist_up(gpfdist_env, greenplum_run.reference.lake, int(port)) == greenplum_run.url
    other = _ta("gpfdist", "up", "--lake", str(cluster.scratch), "--port", port, "--user", "gpadmin",
                env=gpfdist_env)
    assert other.returncode == 2 and "not a lake root" in other.stderr


def test_engine_auto_recognises_greenplum(cluster, greenplum_run) -> None:
    # no --var engine: the server's segment catalog made the staging build gpfdist external tables
    rows = cluster.query(
        "select count(*) from pg_catalog.pg_exttable e join pg_class c on c.oid = e.reloid "
        "join pg_namespace n on n.oid = c.relnamespace where n.nspname = %s", (f"{greenplum_run.schema}_lake",))
    assert rows[0][0] == 1 + 2 * 10  # the listing, then the lines and the line counts of each day
    assert "engine" not in " ".join(greenplum_run.ran.args)


def _tables(rows: list[tuple]) -> list[str]:
    return sorted(r[0] for r in rows)


def _columns(fetch, schema: str, table: str) -> list[tuple[str, str]]:
    return [(name, data_type) for name, data_type in fetch(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = %s and table_name = %s order by ordinal_position", (schema, table))
        if not data_type.startswith("timestamp") and not any(p in name for p in VOLATILE_NAME_PARTS)]


EXACT_TYPES = ("integer", "bigint", "smallint", "text", "character varying", "date", "boolean")


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= TOLERANCE * max(1.0, abs(a), abs(b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):  # json values
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return a == b


def _sort_key(row: tuple) -> str:
    def coarse(v: Any) -> Any:
        if isinstance(v, float):
            return round(v, 4)
        if isinstance(v, (list, tuple)):
            return [coarse(x) for x in v]
        if isinstance(v, dict):
            return sorted((k, coarse(x)) for k, x in v.items())
        return v
    return repr(tuple(coarse(v) for v in row))


def test_every_table_equals_the_postgresql_run(cluster, greenplum_run) -> None:
    pg_schema, gp_schema = greenplum_run.reference.schema, greenplum_run.schema
    listing = ("select table_name from information_schema.tables where table_schema = %s "
               "and table_type = 'BASE TABLE'")
    gp_tables = _tables(cluster.query(listing, (gp_schema,)))
    assert gp_tables == _tables(query(listing, (pg_schema,)))
    assert len(gp_tables) > 18
    differences = {}
    for table in gp_tables:
        typed = _columns(cluster.query, gp_schema, table)
        assert typed == _columns(query, pg_schema, table), table
        select = ", ".join(f'"{c}"' for c, _ in typed)
        if all(t in EXACT_TYPES for _, t in typed):
            # no floats: the same rows have the same text on both engines, compared as a digest
            digest = (f'select count(*), md5(string_agg(t::text, E\'\\n\' order by t::text collate "C")) '
                      f'from (select {select} from "{{}}"."{table}") t')
            gp_digest, pg_digest = cluster.query(digest.format(gp_schema)), query(digest.format(pg_schema))
            if gp_digest != pg_digest:
                differences[table] = f"rows differ: {gp_digest} on Greenplum, {pg_digest} on PostgreSQL"
            continue
        gp_rows = sorted(cluster.query(f'select {select} from "{gp_schema}"."{table}"'), key=_sort_key)
        pg_rows = sorted(query(f'select {select} from "{pg_schema}"."{table}"'), key=_sort_key)
        if len(gp_rows) != len(pg_rows):
            differences[table] = f"{len(gp_rows)} rows on Greenplum, {len(pg_rows)} on PostgreSQL"
            continue
        bad = [(g, p) for g, p in zip(gp_rows, pg_rows) if not _close(g, p)]
        if bad:
            differences[table] = f"{len(bad)} rows differ, e.g. {bad[0]}"
    assert not differences, differences


def test_the_incremental_night_loaded_only_its_day(cluster, greenplum_run) -> None:
    rows = cluster.query(
        f'select dt, min(loaded_at) >= %s, max(loaded_at) >= %s, count(*) from "{greenplum_run.schema}"."stg_flows" '
        "group by dt order by dt", (greenplum_run.started, greenplum_run.started))
    assert rows[-1][0] == RUN_DATE and rows[-1][1], rows[-1]  # the new day: loaded by the nightly
    assert all(not loaded_late for _, _, loaded_late, _ in rows[:-1]), rows  # the days before: untouched
    assert len(rows) == 10


def _documented_policies() -> dict[str, str]:
    """docs/greenplum.md's distribution table: model name -> policy as gp_distribution_policy shows it."""
    text = (PROJECT_DIR / "docs" / "greenplum.md").read_text()
    section = text.split("### Distribution keys", 1)[1].split("\n### ", 1)[0]
    policies = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        policy = cells[1].strip("`")
        policy = {"replicated": "replicated", "randomly": "randomly"}.get(policy, policy)
        for name in re.findall(r"`([a-z][A-Za-z0-9_]+)`", cells[0]):
            policies[name] = policy
    return policies


def test_every_table_has_its_documented_distribution(cluster, greenplum_run) -> None:
    documented = _documented_policies()
    rows = cluster.query(
        "select c.relname, p.policytype, "
        "  (select string_agg(a.attname, ', ' order by k.ord) from unnest(p.distkey) with ordinality k(attnum, ord)"
        "   join pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum) "
        "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "join gp_distribution_policy p on p.localoid = c.oid "
        "where n.nspname = %s and c.relkind = 'r'", (greenplum_run.schema,))
    assert rows
    actual = {}
    for name, policytype, key in rows:
        actual[name] = "replicated" if policytype == "r" else (f"({key})" if key else "randomly")
    pca_outputs = {n for n in actual if re.fullmatch(r"int_pca_hour_\d\d(_\w+)?", n)}
    assert len(pca_outputs) == 24 * 6
    # the PCA functions' own output tables: the engine's default, the first column
    first_columns = dict(cluster.query(
        "select c.relname, a.attname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "join pg_attribute a on a.attrelid = c.oid and a.attnum = 1 where n.nspname = %s",
        (greenplum_run.schema,)))
    assert {n: actual[n] for n in pca_outputs} == {n: f"({first_columns[n]})" for n in pca_outputs}
    assert documented.get("int_pca_hour_HH") == "(first column)"
    models = {n: p for n, p in actual.items() if n not in pca_outputs}
    assert models == {n: documented.get(n, "undocumented") for n in models}


def test_bad_input_is_refused_as_on_postgresql(cluster, gpfdist_env, lake_dir_factory, dbt_project,
                                              tmp_path) -> None:
    """A day whose files cannot be read at all: both engines fail the build naming the files."""
    root = lake_dir_factory("gp-unreadable")
    folder = root / "flows" / "dt=2017-01-10"
    folder.mkdir(parents=True)
    for path in (root / "flows", folder):
        path.chmod(0o755)
    header = b"start_time,user_name,src_ip,dst_ip,dst_port,protocol,bytes\n"
    line = b"2017-01-10T03:04:05Z,alice,10.0.0.1,10.0.0.2,443,tcp,1200\n"
    (folder / "part-0000.csv.gz").write_bytes(gzip.compress(header + line * 5))
    (folder / "part-0001.csv.gz").write_bytes(b"this is not gzip\n")
    for path in folder.iterdir():
        path.chmod(0o644)
    lake_vars = {"lake_root": str(root), "run_date": "2017-01-10"}
    select = ("--selector", "nightly_staging")

    dbt_project.run("run-operation", "stage_external_sources", vars=lake_vars)
    on_postgres = dbt_project.run("build", *select, vars=lake_vars, check=False)

    url = gpfdist_up(gpfdist_env, root, cluster.port + 4)
    on_cluster = GreenplumDbt(schema="ta_bad", target_path=tmp_path / "target",
                              cluster_env=cluster.job_env("ta_bad", tmp_path))
    gp_vars = {**lake_vars, "gpfdist_url": url}
    on_cluster.run("run-operation", "stage_external_sources", vars=gp_vars)
    on_greenplum = on_cluster.run("build", *select, vars=gp_vars, check=False)
    for ran in (on_postgres, on_greenplum):
        assert ran.returncode != 0
        assert "lake files not read whole" in ran.stdout, ran.stdout[-3000:]
        assert "dt=2017-01-10/part-0001.csv.gz" in ran.stdout
        assert "dt=2017-01-10/part-0000.csv.gz" not in ran.stdout.split("not read whole", 1)[1][:400]
    # nothing of the failed load is visible on either engine
    assert cluster.query("select to_regclass('ta_bad.base_lake__flow_lines')") == [(None,)]
    assert query("select to_regclass(%s)", (f"{dbt_project.schema}.base_lake__flow_lines",)) == [(None,)]


def test_madlib_compat_matches_numpy_on_greenplum(cluster) -> None:
    """test_madlib_compat's tests of what Greenplum 7 once refused or hung on, against the
    cluster: eigenvectors written without array-slice assignment (the QL and the leading-vectors
    paths) and the projection with residual, whose computed-once CTEs are read from several
    InitPlans (a hang there becomes an error through the statement timeout)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGHOST="127.0.0.1", PGPORT=str(cluster.port), PGUSER="gpadmin", PGDATABASE=DATABASE,
               PGOPTIONS="-c statement_timeout=60s")
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/python/test_madlib_compat.py",
         "-k", "projection_residual or leading_eigenvectors or clustered"],
        env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stdout[-4000:]
    assert re.search(r"\b([5-9]|[1-9][0-9]) passed", ran.stdout), ran.stdout[-500:]


def _shown_rows(output: str) -> list[dict]:
    """The rows `dbt show --output json` printed: a structured log event holding the preview, or
    (when dbt's logging was set up earlier in the same process, as in the warm launcher) the
    pretty-printed `{"show": [...]}` block itself."""
    lines = output.splitlines()
    for line in lines:
        if line.startswith("{") and line.endswith("}"):
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict) and "preview" in event.get("data", {}):
                return json.loads(event["data"]["preview"])
    start = lines.index("{")
    end = lines.index("}", start)
    return json.loads("\n".join(lines[start:end + 1]))["show"]


def test_normal_quantile_plans_on_greenplum(cluster, tmp_path) -> None:
    """Macro normal_quantile with `p` from an outer query, in the shape that once failed to plan
    here ("unexpected RTE kind 8", fct_user_spikes), against Python's normal quantile; null
    outside (0, 1)."""
    project = GreenplumDbt(schema="ta_nq", target_path=tmp_path / "target",
                           cluster_env=cluster.job_env("ta_nq", tmp_path))
    probabilities = [1e-300, 1e-10, 0.02, 0.5, 0.975, 1 - 1e-12, 0.0, 1.0, None, -1.0]
    values = ", ".join(f"({'null' if p is None else repr(float(p))}::float8)" for p in probabilities)
    sql = (f"with tested as (select t.p from (values {values}) as t(p)), "
           f"limits as (select tested.p, {{{{ normal_quantile('tested.p') }}}} as q from tested offset 0) "
           "select * from limits")
    shown = project.run("show", "--inline", sql, "--limit", "50", "--output", "json", "--log-format", "json")
    rows = _shown_rows(shown.stdout)
    assert len(rows) == len(probabilities)
    for row in rows:
        p, q = row["p"], row["q"]
        if p is not None and 0 < p < 1:
            expected = NormalDist().inv_cdf(p)
            assert abs(q - expected) <= 1e-12 * max(1.0, abs(expected)), (p, q, expected)
        else:
            assert q is None, (p, q)
