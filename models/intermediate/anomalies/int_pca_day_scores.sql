{{ config(materialized='table') }}

{#- The projections of the 24 hours (int_pca_hourly_projections), one row per (hour, day,
    component): the coordinate of the day's centred flow counts along the component, in the
    orientation int_pca_components gives the component. -#}

with

projection_rows as (

    select
        hour_of_day,
        day_index,
        row_vec
    from {{ ref('int_pca_hourly_projections') }}

),

orientation as (

    select
        hour_of_day,
        component_rank,
        component_sign
    from {{ ref('int_pca_components') }}

),

scores as (

    select
        projection_rows.hour_of_day,
        projection_rows.day_index,
        entries.component_rank::int as component_rank,
        orientation.component_sign * entries.score as score
    from projection_rows
    cross join unnest(projection_rows.row_vec) with ordinality as entries (score, component_rank)
    inner join orientation
        on
            projection_rows.hour_of_day = orientation.hour_of_day
            and entries.component_rank = orientation.component_rank

)

select
    hour_of_day,
    day_index,
    component_rank,
    score
from scores
