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


{#- Install (or refresh) madlib_compat once per dbt invocation, before any model runs.
    Parallel invocations (one per hour) serialise on an advisory lock, so two never replace
    the functions at the same time. No-op when MADlib itself is used. -#}
{% macro ensure_pca_backend() %}
    {%- if execute and pca_backend_schema() == 'madlib_compat' -%}
        {%- do run_query("select pg_advisory_xact_lock(hashtext('traffic_anomalies.madlib_compat'))") -%}
        {%- do install_madlib_compat() -%}
        {%- do run_query("commit") -%}
    {%- endif -%}
{% endmacro %}
