{{ config(materialized='table') }}

{#- The principal components of the 24 hours (int_pca_hourly_components): every kept component of every hour,
    its spread, its share of the hour's variance and its loadings over users.
    A component's sign is arbitrary (MADlib's comes from a random Lanczos start vector and
    changes from run to run), so each one is oriented here, before anything reads it: its
    largest-magnitude loading is positive (ties: the lowest user_index; magnitudes compared
    to 1e-10, well above the backends' rounding differences). `component_sign` is the factor
    applied to the backend's vector; the day scores get the same one. -#}

with

components as (

    select
        hour_of_day,
        component_rank,
        std_dev,
        proportion,
        principal_components
    from {{ ref('int_pca_hourly_components') }}

),

oriented as (

    select
        components.hour_of_day,
        components.component_rank,
        components.std_dev,
        components.proportion,
        components.principal_components,
        (
            select sign(entries.loading)
            from unnest(components.principal_components) with ordinality as entries (loading, user_index)
            order by round(abs(entries.loading)::numeric, 10) desc, entries.user_index asc
            limit 1
        ) as component_sign
    from components

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
        component_sign,
        array(
            select oriented.component_sign * entries.loading
            from unnest(oriented.principal_components) with ordinality as entries (loading, user_index)
            order by entries.user_index
        ) as principal_components
    from oriented

)

select
    hour_of_day,
    component_rank,
    std_dev,
    eigenvalue,
    proportion,
    cumulative_proportion,
    component_sign,
    principal_components
from ranked
