{#- dim_days of the latest published night: the rows of dim_days_history written by the run
    that dim_runs published last. -#}

with

history as (

    select
        day_index,
        activity_date,
        iso_day_of_week,
        run_id,
        run_date
    from {{ ref('dim_days_history') }}

),

published as (

    {{ latest_published_run() }}

)

select
    history.day_index,
    history.activity_date,
    history.iso_day_of_week,
    history.run_id,
    history.run_date
from history
inner join published on history.run_id = published.run_id
