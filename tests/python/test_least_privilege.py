"""Least privilege against the real database: roles made by `create_project_roles`, the whole
build run as the job role, and a reporting role that can read the marts and nothing else.

The roles are cluster-wide: each run makes its own (random names) and removes them after,
handing back to the administrator whatever the job role owned.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import psycopg2
import pytest
from psycopg2 import errors, sql

from conftest import DbtProject, connect, drop_schemas, new_schema, query

RUN_DATE = dt.date(2017, 1, 8)


@pytest.fixture(scope="module")
def roles(database) -> Iterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    job, reporting = f"ta_job_{suffix}", f"ta_rep_{suffix}"
    yield job, reporting
    admin = database.get("PGUSER") or query("select current_user")[0][0]
    with connect() as conn, conn.cursor() as cur:
        for role in (job, reporting):
            cur.execute("select 1 from pg_roles where rolname = %s", (role,))
            if cur.fetchone():
                cur.execute(sql.SQL("reassign owned by {} to {}").format(sql.Identifier(role), sql.Identifier(admin)))
                cur.execute(sql.SQL("drop owned by {}").format(sql.Identifier(role)))
                cur.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))


@pytest.fixture(scope="module")
def built_as_job(roles, lake_dir_factory, tmp_path_factory) -> Iterator[tuple[DbtProject, str, str]]:
    from traffic_anomalies_dev.lake import generate_lake

    job, reporting = roles
    lake = lake_dir_factory("privilege")
    generate_lake(lake, users=20, days=8, start=RUN_DATE - dt.timedelta(days=7), seed=5)
    admin = DbtProject(schema=new_schema("t_priv"), target_path=tmp_path_factory.mktemp("priv_admin"))
    as_job = JobProject(schema=admin.schema, target_path=tmp_path_factory.mktemp("priv_job"), role=job)
    try:
        ran = admin.run("run-operation", "create_project_roles",
                        "--args", f'{{"job_role": "{job}", "reporting_role": "{reporting}"}}')
        assert "roles ready" in ran.stdout
        lake_vars = {"lake_root": str(lake), "run_date": RUN_DATE.isoformat(), "reporting_role": reporting}
        as_job.run("run-operation", "stage_external_sources", vars=lake_vars)
        as_job.run("build", vars=lake_vars)
        yield as_job, job, reporting
    finally:
        drop_schemas(admin.schema)


class JobProject(DbtProject):
    """dbt connecting as the job role (the server trusts local connections in the test setup)."""

    def __init__(self, schema, target_path, role):
        super().__init__(schema=schema, target_path=target_path)
        self.role = role

    def env(self) -> dict[str, str]:
        return {**super().env(), "PGUSER": self.role}


def as_role(role: str) -> psycopg2.extensions.connection:
    conn = connect()
    with conn.cursor() as cur:
        cur.execute(sql.SQL("set role {}").format(sql.Identifier(role)))
    return conn


def relations(schema: str, prefixes: tuple[str, ...]) -> list[str]:
    return [name for (name,) in query(
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relkind in ('r', 'v', 'p', 'f') order by 1", (schema,))
        if name.startswith(prefixes)]


def test_the_job_role_is_no_superuser_and_owns_only_the_project_schemas(built_as_job):
    project, job, _ = built_as_job
    ((superuser, createrole, createdb),) = query(
        "select rolsuper, rolcreaterole, rolcreatedb from pg_roles where rolname = %s", (job,))
    assert not (superuser or createrole or createdb)
    owned = {name for (name,) in query(
        "select nspname from pg_namespace where pg_get_userbyid(nspowner) = %s", (job,))}
    assert owned == {project.schema, f"{project.schema}_lake", "ta_meta", "ta_task_history", "madlib_compat"}
    # Everything the build made is the job role's.
    others = query(
        "select c.relname, pg_get_userbyid(c.relowner) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname in (%s, %s) and pg_get_userbyid(c.relowner) <> %s",
        (project.schema, f"{project.schema}_lake", job))
    assert others == []
    with as_role(job) as conn, conn.cursor() as cur:
        with pytest.raises(errors.InsufficientPrivilege):
            cur.execute("create schema t_priv_not_allowed")


def test_the_reporting_role_reads_the_marts(built_as_job):
    project, _, reporting = built_as_job
    marts = relations(project.schema, ("fct_", "dim_"))
    assert len(marts) >= 5, marts
    conn = as_role(reporting)
    try:
        with conn.cursor() as cur:
            for mart in marts:
                cur.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(project.schema, mart)))
                assert cur.fetchone()[0] >= 0
    finally:
        conn.close()


def test_the_reporting_role_reads_nothing_else_and_writes_nothing(built_as_job):
    project, _, reporting = built_as_job
    hidden = [(project.schema, name) for name in relations(project.schema, ("base_", "stg_", "int_"))]
    hidden += [(f"{project.schema}_lake", name) for name in relations(f"{project.schema}_lake", ("flow",))]
    assert any(name == "base_lake__flow_lines" for _, name in hidden) and len(hidden) > 10
    mart = sql.Identifier(project.schema, "dim_days_history")  # a table (dim_days is a view of it)
    statements = [sql.SQL("select 1 from {} limit 1").format(sql.Identifier(*rel)) for rel in hidden] + [
        sql.SQL("insert into {} select * from {} limit 1").format(mart, mart),
        sql.SQL("delete from {}").format(mart),
        sql.SQL("update {} set day_index = day_index").format(mart),
        sql.SQL("truncate {}").format(mart),
        sql.SQL("drop table {}").format(mart),
        sql.SQL("create table {} (x int)").format(sql.Identifier(project.schema, "planted")),
        sql.SQL("create table public.planted (x int)"),
        sql.SQL("select * from ta_meta.step_state"),
    ]
    conn = as_role(reporting)
    try:
        for statement in statements:
            with conn.cursor() as cur:
                with pytest.raises((errors.InsufficientPrivilege, errors.UndefinedColumn)) as refused:
                    cur.execute(statement)
                assert isinstance(refused.value, errors.InsufficientPrivilege), statement.as_string(conn)
    finally:
        conn.close()
    assert query("select count(*) from {}".format(f'"{project.schema}"."dim_days"'))[0][0] > 0


def test_without_reporting_role_no_grant_is_made(built_as_job, tmp_path):
    """The default (var reporting_role unset) grants nothing to anyone."""
    project, _, reporting = built_as_job
    rebuilt = project.run("build", "--select", "dim_days",
                          vars={"lake_root": "/nonexistent", "run_date": RUN_DATE.isoformat()})
    assert rebuilt.returncode == 0
    grants = query(
        "select grantee from information_schema.role_table_grants where table_schema = %s and table_name = 'dim_days' "
        "and grantee <> (select pg_get_userbyid(relowner) from pg_class where oid = to_regclass(%s))",
        (project.schema, f'"{project.schema}"."dim_days"'))
    assert grants == []
