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


{#- adapter.dispatch, plus a `greenplum__` implementation when the engine is Greenplum
    (with a real Greenplum adapter, adapter.dispatch alone would find it). -#}
{% macro engine_dispatch(macro_name) %}
    {%- if target_engine() == 'greenplum' and context.get('greenplum__' ~ macro_name) is not none -%}
        {{ return(context['greenplum__' ~ macro_name]) }}
    {%- endif -%}
    {{ return(adapter.dispatch(macro_name, 'traffic_anomalies')) }}
{% endmacro %}
