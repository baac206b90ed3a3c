{{ config(materialized='table') }}

{#- Each day's residual outside the SPE's normal subspace, one row per (hour, day, user).
    The residual tables hold the day minus its projection on every component the PCA kept
    (var pca_components, 0.99 of the variance by default); the SPE's normal subspace is only
    the leading components selected by var `spe_components`, so the part of the day along the
    kept components after those is added back: residual + Σ score × loading over them. -#}

with

residuals as (

    select
        hour_of_day,
        day_index,
        user_index,
        residual
    from {{ ref('int_pca_residual_cells') }}

),

scores as (

    select
        hour_of_day,
        day_index,
        component_rank,
        score
    from {{ ref('int_pca_day_scores') }}

),

loadings as (

    select
        hour_of_day,
        component_rank,
        user_index,
        loading,
        proportion,
        cumulative_proportion
    from {{ ref('int_pca_component_loadings') }}

),

returned_loadings as (

    -- kept by the PCA, outside the SPE's normal subspace
    select
        hour_of_day,
        component_rank,
        user_index,
        loading
    from loadings
    where not ({{ spe_component_selection() }})

),

returned_parts as (

    select
        scores.hour_of_day,
        scores.day_index,
        returned_loadings.user_index,
        sum(scores.score * returned_loadings.loading) as returned_part
    from scores
    inner join returned_loadings
        on
            scores.hour_of_day = returned_loadings.hour_of_day
            and scores.component_rank = returned_loadings.component_rank
    group by scores.hour_of_day, scores.day_index, returned_loadings.user_index

),

spe_residuals as (

    select
        residuals.hour_of_day,
        residuals.day_index,
        residuals.user_index,
        residuals.residual + coalesce(returned_parts.returned_part, 0) as residual
    from residuals
    left join returned_parts
        on
            residuals.hour_of_day = returned_parts.hour_of_day
            and residuals.day_index = returned_parts.day_index
            and residuals.user_index = returned_parts.user_index

)

select
    hour_of_day,
    day_index,
    user_index,
    residual
from spe_residuals
