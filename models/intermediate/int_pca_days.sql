{#- The PCA window: the last `pca_window_days` days up to the run date (var `run_date`,
    default the newest day with flows), never before the first day with flows. `day_index`
    is the row_id of every hourly PCA matrix. -#}

with

counted_days as (

    select
        min(activity_date) as first_day,
        max(activity_date) as last_day
    from {{ ref('int_hourly_counts') }}

),

window_bounds as (

    select
        {{ pca_window_end('counted_days.last_day') }} as window_end,
        greatest(
            counted_days.first_day,
            {{ pca_window_end('counted_days.last_day') }} - ({{ pca_window_days() }} - 1)
        ) as window_start
    from counted_days

),

days as (

    select generate_series(window_start, window_end, interval '1 day')::date as activity_date
    from window_bounds

)

select
    row_number() over (order by activity_date)::int as day_index,
    activity_date,
    extract(isodow from activity_date)::int as iso_day_of_week
from days
