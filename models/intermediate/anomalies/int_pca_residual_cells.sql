{{
    config(
        materialized='table',
        post_hook=["create index if not exists {{ this.identifier }}__hour_day on {{ this }} (hour_of_day, day_index)"],
    )
}}

{#- The residuals of the 24 hours (int_pca_hourly_residuals), one row per (hour, day, user): the
    day's centred flow count minus its projection on the hour's kept components. -#}

with

residual_rows as (

    select
        hour_of_day,
        day_index,
        row_vec
    from {{ ref('int_pca_hourly_residuals') }}

),

cells as (

    select
        residual_rows.hour_of_day,
        residual_rows.day_index,
        entries.user_index::int as user_index,
        entries.residual
    from residual_rows
    cross join unnest(residual_rows.row_vec) with ordinality as entries (residual, user_index)

)

select
    hour_of_day,
    day_index,
    user_index,
    residual
from cells
