{{ config(materialized='table') }}

{#- The 24 per-hour principal-component tables in one: every kept component of every hour,
    its spread, its share of the hour's variance and its loadings over users. -#}

with

components as (

    {{ union_pca_hour_tables('', ["row_id as component_rank", "std_dev", "proportion", "principal_components"]) }}

),

ranked as (

    select
        hour_of_day,
        component_rank,
        std_dev,
        std_dev * std_dev as eigenvalue,
        proportion,
        sum(proportion) over (
            partition by hour_of_day order by component_rank rows unbounded preceding
        ) as cumulative_proportion,
        principal_components
    from components

)

select
    hour_of_day,
    component_rank,
    std_dev,
    eigenvalue,
    proportion,
    cumulative_proportion,
    principal_components
from ranked
