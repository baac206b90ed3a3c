{#- Where pca_sparse_train and pca_sparse_project come from: Apache MADlib when the database
    has it, else the project's compatible implementation in schema `madlib_compat`.
    Var `pca_backend`: auto (default) | madlib | compat. Returns the schema to call. -#}
{% macro pca_backend_schema() %}
    {%- set choice = var('pca_backend', 'auto') -%}
    {%- if choice not in ('auto', 'madlib', 'compat') -%}
        {{ exceptions.raise_compiler_error("pca_backend must be auto, madlib or compat, got: " ~ (choice | tojson)) }}
    {%- endif -%}
    {%- if choice == 'compat' -%}
        {{ return('madlib_compat') }}
    {%- endif -%}
    {%- set has_madlib = execute and run_query(
        "select count(*) from pg_proc as p join pg_namespace as n on p.pronamespace = n.oid"
        ~ " where n.nspname = 'madlib' and p.proname = 'pca_sparse_train'").columns[0].values()[0] > 0 -%}
    {%- if has_madlib -%}
        {{ return('madlib') }}
    {%- elif choice == 'madlib' -%}
        {{ exceptions.raise_compiler_error("pca_backend is madlib but this database has no madlib.pca_sparse_train: install Apache MADlib, or use pca_backend auto or compat") }}
    {%- endif -%}
    {{ return('madlib_compat') }}
{% endmacro %}


{#- Install (or refresh) madlib_compat before any model runs, only when its DDL changed (a
    checksum kept as the schema's comment), so each per-hour dbt invocation pays one query.
    Parallel invocations serialise on an advisory lock, so two never replace the functions
    at the same time. No-op when MADlib itself is used. -#}
{% macro ensure_pca_backend() %}
    {%- if execute and pca_backend_schema() == 'madlib_compat' -%}
        {%- set marker = 'traffic_anomalies madlib_compat ' ~ local_md5(madlib_compat__ddl()) -%}
        {%- set installed_sql -%}
            select coalesce(obj_description(oid, 'pg_namespace'), '') from pg_namespace where nspname = 'madlib_compat'
        {%- endset -%}
        {%- set installed = run_query(installed_sql).columns[0].values() -%}
        {%- if installed | length == 0 or installed[0] != marker -%}
            {%- do run_query("select pg_advisory_lock(hashtext('traffic_anomalies.madlib_compat'))") -%}
            {%- set installed = run_query(installed_sql).columns[0].values() -%}
            {%- if installed | length == 0 or installed[0] != marker -%}
                {%- do run_query(madlib_compat__ddl()) -%}
                {%- do run_query("comment on schema madlib_compat is " ~ sql_string_literal(marker)) -%}
                {{ log("installed madlib_compat (" ~ marker ~ ")", info=true) }}
            {%- endif -%}
            {%- do run_query("commit") -%}
            {%- do run_query("select pg_advisory_unlock(hashtext('traffic_anomalies.madlib_compat'))") -%}
        {%- endif -%}
    {%- endif -%}
{% endmacro %}
