{#- fct_incidents of the latest published night: the rows of fct_incidents_history written by
    the run that dim_runs published last. -#}

with

history as (

    select
        incident_id,
        user_name,
        activity_date,
        hours,
        score,
        rank_in_night,
        detectors,
        kind,
        flows,
        usual_flows,
        bytes,
        usual_bytes,
        top_destinations,
        top_ports,
        first_run_id,
        first_run_date,
        is_new,
        run_id,
        run_date
    from {{ ref('fct_incidents_history') }}

),

published as (

    {{ latest_published_run() }}

)

select
    history.incident_id,
    history.user_name,
    history.activity_date,
    history.hours,
    history.score,
    history.rank_in_night,
    history.detectors,
    history.kind,
    history.flows,
    history.usual_flows,
    history.bytes,
    history.usual_bytes,
    history.top_destinations,
    history.top_ports,
    history.first_run_id,
    history.first_run_date,
    history.is_new,
    history.run_id,
    history.run_date
from history
inner join published on history.run_id = published.run_id
