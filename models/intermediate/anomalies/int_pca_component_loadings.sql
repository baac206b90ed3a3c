{{ config(materialized='table') }}

{#- The 24 principal-component tables in long form, one row per (hour, component, user): the
    user's loading on the component, with the component's eigenvalue and variance shares. -#}

with

components as (

    {% for model_name in pca_hour_model_names() %}
    select
        {{ loop.index0 }} as hour_of_day,
        row_id as component_rank,
        std_dev,
        proportion,
        principal_components
    from {{ pca_companion(model_name, '') }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

ranked as (

    select
        hour_of_day,
        component_rank,
        std_dev * std_dev as eigenvalue,
        proportion,
        sum(proportion) over (
            partition by hour_of_day order by component_rank rows unbounded preceding
        ) as cumulative_proportion,
        principal_components
    from components

),

loadings as (

    select
        ranked.hour_of_day,
        ranked.component_rank,
        entries.user_index::int as user_index,
        entries.loading,
        ranked.eigenvalue,
        ranked.proportion,
        ranked.cumulative_proportion
    from ranked
    cross join unnest(ranked.principal_components) with ordinality as entries (loading, user_index)

)

select
    hour_of_day,
    component_rank,
    user_index,
    loading,
    eigenvalue,
    proportion,
    cumulative_proportion
from loadings
