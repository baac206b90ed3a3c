{{ config(materialized='table') }}

{#- Each day's residual outside the SPE's normal subspace, one row per (hour, day, user): the
    day's centred flow counts minus their part along the leading components selected by var
    `spe_components`, x - mean - Σ score × loading over those components. Computed from the
    counts and the normal subspace, not from the residual table plus the components between:
    the normal subspace is the small one (1 component by default against the ~27 others a
    0.99 PCA keeps), and the work grows with days × users × its size. The residual table only
    lends the (hour, day, user) grid, which is dense. -#}

with

grid as (

    select
        hour_of_day,
        day_index,
        user_index
    from {{ ref('int_pca_residual_cells') }}

),

counts as (

    select
        hour_of_day,
        row_id as day_index,
        col_id as user_index,
        value
    from {{ ref('int_pca_input') }}

),

mean_rows as (

    select
        hour_of_day,
        column_mean
    from {{ ref('int_pca_hourly_means') }}

),

means as (

    select
        mean_rows.hour_of_day,
        entries.user_index::int as user_index,
        entries.column_mean
    from mean_rows
    cross join unnest(mean_rows.column_mean) with ordinality as entries (column_mean, user_index)

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

normal_loadings as (

    select
        hour_of_day,
        component_rank,
        user_index,
        loading
    from loadings
    where {{ spe_component_selection() }}

),

normal_parts as (

    select
        scores.hour_of_day,
        scores.day_index,
        normal_loadings.user_index,
        sum(scores.score * normal_loadings.loading) as normal_part
    from scores
    inner join normal_loadings
        on
            scores.hour_of_day = normal_loadings.hour_of_day
            and scores.component_rank = normal_loadings.component_rank
    group by scores.hour_of_day, scores.day_index, normal_loadings.user_index

),

spe_residuals as (

    select
        grid.hour_of_day,
        grid.day_index,
        grid.user_index,
        coalesce(counts.value, 0) - means.column_mean - coalesce(normal_parts.normal_part, 0) as residual
    from grid
    inner join means
        on
            grid.hour_of_day = means.hour_of_day
            and grid.user_index = means.user_index
    left join counts
        on
            grid.hour_of_day = counts.hour_of_day
            and grid.day_index = counts.day_index
            and grid.user_index = counts.user_index
    left join normal_parts
        on
            grid.hour_of_day = normal_parts.hour_of_day
            and grid.day_index = normal_parts.day_index
            and grid.user_index = normal_parts.user_index

)

select
    hour_of_day,
    day_index,
    user_index,
    residual
from spe_residuals
