{{
    config(
        materialized='table',
        post_hook=["create index if not exists {{ this.identifier }}__hour_day on {{ this }} (hour_of_day, day_index)"],
    )
}}

{#- The 24 residual tables written by pca_sparse_project, one row per (hour, day, user): the
    day's centred flow count minus its projection on the hour's kept components. -#}

with

residual_rows as (

    {{ union_pca_hour_tables('_residual', ["row_id as day_index", "row_vec"]) }}

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
