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
