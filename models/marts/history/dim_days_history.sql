{#- The PCA window of each run (int_pca_days, as the run computed it). -#}

with

days as (

    select
        day_index,
        activity_date,
        iso_day_of_week
    from {{ ref('int_pca_days') }}

)

select
    day_index,
    activity_date,
    iso_day_of_week,
    {{ nightly_run_columns() }}
from days
