{#- The body of each per-hour PCA model (int_pca_hour_HH): the hour comes from the model's
    name, so the 24 model files are identical one-liners and every hour is its own node
    (own failure, own rebuild, run in parallel). -#}
{% macro pca_hour_model() %}
    {%- set hour = validated_hour(model.name[-2:] | int) -%}
    {{ config(materialized='pca_sparse', tags=['pca_hour'], meta={'hour_of_day': hour}) }}
    -- depends_on: {{ ref('int_pca_days') }}, {{ ref('int_pca_users') }}
    select
        row_id,
        col_id,
        value
    from {{ ref('int_pca_input') }}
    where hour_of_day = {{ hour }}
{% endmacro %}
