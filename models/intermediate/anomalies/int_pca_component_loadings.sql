{{ config(materialized='table') }}

{#- The 24 principal-component tables in long form, one row per (hour, component, user): the
    user's loading on the component, with the component's eigenvalue and variance shares. -#}

with

components as (

    select
        hour_of_day,
        component_rank,
        eigenvalue,
        proportion,
        cumulative_proportion,
        principal_components
    from {{ ref('int_pca_components') }}

),

loadings as (

    select
        components.hour_of_day,
        components.component_rank,
        entries.user_index::int as user_index,
        entries.loading,
        components.eigenvalue,
        components.proportion,
        components.cumulative_proportion
    from components
    cross join unnest(components.principal_components) with ordinality as entries (loading, user_index)

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
