{#- Which engine the target is: `postgres` or `greenplum`. dbt-postgres reports
    target.type = 'postgres' on both, so var `engine` (auto | postgres | greenplum) decides,
    and `auto` asks the server. -#}
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
        {%- set version = run_query('select version()').columns[0].values()[0] -%}
        {{ return('greenplum' if 'Greenplum' in version else 'postgres') }}
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
