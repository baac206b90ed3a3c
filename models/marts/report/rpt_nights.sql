{#- One row per published night kept in the history (the latest published run of each run
    date): its incidents and how many of them it reported first, its residual spikes and how
    many of them the previous kept night did not have. -#}

with

runs as (

    select
        run_id,
        run_date,
        published_at,
        row_number() over (partition by run_date order by published_at desc, run_id desc) as attempt
    from {{ ref('dim_runs') }}

),

spikes as (

    select
        run_id,
        user_name,
        activity_date,
        hour_of_day
    from {{ ref('fct_user_spikes_history') }}

),

incidents as (

    select
        run_id,
        is_new
    from {{ ref('fct_incidents_history') }}

),

nights as (

    select
        run_id,
        run_date,
        published_at,
        lag(run_id) over (order by run_date) as previous_run_id,
        lag(run_date) over (order by run_date) as previous_run_date
    from runs
    where attempt = 1

),

counted as (

    select
        nights.run_id,
        count(spikes.run_id) as spikes,
        count(spikes.run_id) filter (
            where not exists (
                select 1
                from spikes as earlier
                where
                    earlier.run_id = nights.previous_run_id
                    and earlier.user_name = spikes.user_name
                    and earlier.activity_date = spikes.activity_date
                    and earlier.hour_of_day = spikes.hour_of_day
            )
        ) as new_spikes
    from nights
    left join spikes on nights.run_id = spikes.run_id
    group by nights.run_id

),

incident_counts as (

    select
        nights.run_id,
        count(incidents.run_id) as incidents,
        count(incidents.run_id) filter (where incidents.is_new) as new_incidents
    from nights
    left join incidents on nights.run_id = incidents.run_id
    group by nights.run_id

),

final as (

    select
        nights.run_date,
        nights.run_id,
        nights.published_at,
        nights.previous_run_date,
        nights.previous_run_id,
        incident_counts.incidents,
        incident_counts.new_incidents,
        counted.spikes,
        counted.new_spikes
    from nights
    inner join counted on nights.run_id = counted.run_id
    inner join incident_counts on nights.run_id = incident_counts.run_id

)

select
    run_date,
    run_id,
    published_at,
    previous_run_date,
    previous_run_id,
    incidents,
    new_incidents,
    spikes,
    new_spikes
from final
