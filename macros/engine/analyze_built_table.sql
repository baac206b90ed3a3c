{#- Post-hook of every model: `analyze` the table a model just wrote, so the models that read
    it next are planned on its real size and values. A table created a moment ago has no
    statistics until autovacuum gets to it, and the planner's defaults (a handful of rows, a
    filter keeping 0.5 %) chose nested loops that turned a seconds-long model into a
    quarter-hour one. Views have nothing to analyze. -#}
{% macro analyze_built_table() -%}
    {%- if config.get('materialized') in ('table', 'incremental') -%}
        analyze {{ this }}
    {%- endif -%}
{%- endmacro %}
