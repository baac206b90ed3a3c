{#- Tonight's incidents in the order the report leads with them (`report_rank`): those new
    tonight first, then those still open (an earlier kept night reported them and tonight
    flags them again), by score within each, ties as fct_incidents ranks them. -#}

with

incidents as (

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
    from {{ ref('fct_incidents') }}

)

select
    row_number() over (
        order by is_new desc, score desc, rank_in_night asc
    ) as report_rank,
    case when is_new then 'new' else 'still open' end as report_status,
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
from incidents
