{#- Which engine the target is: `postgres` or `greenplum`. dbt-postgres reports
    target.type = 'postgres' on both, so var `engine` (auto | postgres | greenplum) decides,
    and `auto` asks the server what it is: a Greenplum-derived server (Greenplum, Apache
    Cloudberry, ...) has the segment catalog `gp_segment_configuration`, whatever product name
    its version() prints (Cloudberry's says "PostgreSQL 14.4 (Apache Cloudberry ...)"). -#}
{% macro target_engine() %}
    {%- set choice = var('engine', 'auto') -%}
    {%- if choice not in ('auto', 'postgres', 'greenplum') -%}
        {{ exceptions.raise_compiler_error("var engine must be auto, postgres or greenplum, got: " ~ (choice | tojson)) }}
    {%- endif -%}
    {%- if choice != 'auto' -%}
        {{ return(choice) }}
    {%- elif target.type == 'greenplum' -%}
        {{ return('greenplum') }}
    {%- elif execute -%}
        {%- set segmented = run_query("select to_regclass('pg_catalog.gp_segment_configuration') is not null").columns[0].values()[0] -%}
        {{ return('greenplum' if segmented else 'postgres') }}
    {%- else -%}
        {{ return('postgres') }}
    {%- endif -%}
{% endmacro %}


{#- The `greenplum__` implementation of a macro when the engine is Greenplum, else none.
    Use as `(greenplum_override('x') or adapter.dispatch('x', 'traffic_anomalies'))(...)`:
    dbt-postgres serves both engines, so adapter.dispatch alone would never pick it
    (with a real Greenplum adapter it would). -#}
{% macro greenplum_override(macro_name) %}
    {%- if target_engine() == 'greenplum' -%}
        {{ return(context.get('greenplum__' ~ macro_name)) }}
    {%- endif -%}
    {{ return(none) }}
{% endmacro %}
