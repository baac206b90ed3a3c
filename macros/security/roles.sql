{#- Var `reporting_role` (default none): the read-only role that gets `select` on the marts
    through their `grants` config (dbt_project.yml). Refused unless a plain lowercase
    identifier: dbt writes grantees into GRANT statements as they are. -#}
{% macro reporting_role() %}
    {%- set role = var('reporting_role', none) -%}
    {%- if role is none or role == '' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if role is not string or not modules.re.fullmatch('[a-z_][a-z0-9_]{0,62}', role) -%}
        {{ exceptions.raise_compiler_error("reporting_role must be a plain lowercase role name (a-z, 0-9, _), got: " ~ (role | tojson)) }}
    {%- endif -%}
    {{ return(role) }}
{% endmacro %}


{#- `dbt run-operation create_project_roles --args '{job_role: ta_job, reporting_role: ta_reporting}'`,
    run once by an administrator (a superuser, or a role with CREATEROLE that owns the
    database): the nightly job's role owns the project's schemas and nothing else; the
    reporting role can only read the marts (given by the marts' grants at each build).

      job role        LOGIN, no password here (set one out of band, or use peer/cert auth);
                      owns <target>, <target>_lake, ta_meta, ta_task_history (the central
                      scheduler's task history) and madlib_compat (created here when missing); usage on file_fdw and its server; member of
                      pg_execute_server_program, which file_fdw's `program` option needs:
                      that lets the role run any shell command as the database server's OS
                      user, the price of reading gzip'd files in place (see docs/security.md).
      reporting role  NOLOGIN group role: grant it to the people or tools that read the
                      results; usage on the target schema only, `select` on each mart.

    Idempotent. Role names must be plain lowercase identifiers. -#}
{% macro create_project_roles(job_role='ta_job', reporting_role='ta_reporting') %}
    {%- for role in [job_role, reporting_role] -%}
        {%- if role is not string or not modules.re.fullmatch('[a-z_][a-z0-9_]{0,62}', role) -%}
            {{ exceptions.raise_compiler_error("role names must be plain lowercase identifiers (a-z, 0-9, _), got: " ~ (role | tojson)) }}
        {%- endif -%}
    {%- endfor -%}
    {%- if job_role == reporting_role -%}
        {{ exceptions.raise_compiler_error("the job role and the reporting role must differ") }}
    {%- endif -%}
    {%- set schema = validated_schema_name(target.schema, 'the target schema (env TA_SCHEMA)') -%}
    {%- set schemas = [schema, lake_schema(), 'ta_meta', 'ta_task_history', 'madlib_compat'] -%}
    {%- set sql -%}
do $$
begin
    if not exists (select 1 from pg_roles where rolname = {{ sql_string_literal(job_role) }}) then
        create role {{ job_role }} login;
    end if;
    if not exists (select 1 from pg_roles where rolname = {{ sql_string_literal(reporting_role) }}) then
        create role {{ reporting_role }} nologin;
    end if;
end
$$;
create extension if not exists file_fdw;
do $$
begin
    if not exists (select 1 from pg_foreign_server where srvname = 'traffic_anomalies_lake') then
        create server traffic_anomalies_lake foreign data wrapper file_fdw;
    end if;
end
$$;
grant usage on foreign data wrapper file_fdw to {{ job_role }};
grant usage on foreign server traffic_anomalies_lake to {{ job_role }};
grant pg_execute_server_program to {{ job_role }};
grant connect, temporary on database {{ adapter.quote(target.database) }} to {{ job_role }};
grant connect on database {{ adapter.quote(target.database) }} to {{ reporting_role }};
{% for name in schemas %}
create schema if not exists {{ adapter.quote(name) }} authorization {{ job_role }};
alter schema {{ adapter.quote(name) }} owner to {{ job_role }};
{% endfor %}
do $$
declare
    item record;
begin
    -- what earlier runs (as another role) left in the project schemas passes to the job role
    for item in
        select format('alter %s %I.%I owner to %I',
                      case c.relkind when 'v' then 'view' when 'f' then 'foreign table'
                                     when 'm' then 'materialized view' when 'S' then 'sequence' else 'table' end,
                      n.nspname, c.relname, {{ sql_string_literal(job_role) }}) as ddl
        from pg_class as c
        inner join pg_namespace as n on c.relnamespace = n.oid
        where n.nspname in ({% for name in schemas %}{{ sql_string_literal(name) }}{{ ", " if not loop.last }}{% endfor %})
            and c.relkind in ('r', 'p', 'v', 'f', 'm', 'S')
            -- a serial column's sequence follows its table's owner (and refuses its own change)
            and not exists (
                select 1 from pg_depend as d
                where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype in ('a', 'i')
                    and c.relkind = 'S'
            )
    loop
        execute item.ddl;
    end loop;
    for item in
        select format('alter %s %I.%I(%s) owner to %I',
                      case p.prokind when 'p' then 'procedure' when 'a' then 'aggregate' else 'function' end,
                      n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), {{ sql_string_literal(job_role) }}) as ddl
        from pg_proc as p
        inner join pg_namespace as n on p.pronamespace = n.oid
        where n.nspname in ({% for name in schemas %}{{ sql_string_literal(name) }}{{ ", " if not loop.last }}{% endfor %})
    loop
        execute item.ddl;
    end loop;
end
$$;
grant usage on schema {{ adapter.quote(schema) }} to {{ reporting_role }};
    {%- endset -%}
    {%- do run_query(sql) -%}
    {%- do run_query("commit") -%}
    {{ log("roles ready: " ~ job_role ~ " owns schemas " ~ schemas | join(', ') ~ "; " ~ reporting_role
        ~ " may read the marts (build with --vars '{reporting_role: " ~ reporting_role ~ "}')", info=true) }}
{% endmacro %}
