{#- The 24 per-hour PCA models, and the companion tables each one writes beside it. -#}

{% macro pca_hour_model_names() %}
    {%- set names = [] -%}
    {%- for hour in range(24) -%}
        {%- do names.append('int_pca_hour_%02d' % hour) -%}
    {%- endfor -%}
    {{ return(names) }}
{% endmacro %}


{#- `ref` keeps the lineage (and the build order); the suffix names the companion table. -#}
{% macro pca_companion(model_name, suffix) %}
    {%- set relation = ref(model_name) -%}
    {%- if suffix == '' -%}
        {{ return(relation) }}
    {%- endif -%}
    {{ return(api.Relation.create(database=relation.database, schema=relation.schema, identifier=relation.identifier ~ suffix)) }}
{% endmacro %}


{#- The same companion table of all 24 hours, stacked, with the hour as a column: `columns` are
    the select expressions taken from each hour's table. -#}
{% macro union_pca_hour_tables(suffix, columns) %}
    {%- for model_name in pca_hour_model_names() %}
    select
        {{ loop.index0 }} as hour_of_day,
        {{ columns | join(',\n        ') }}
    from {{ pca_companion(model_name, suffix) }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
{% endmacro %}
