{#- Every kept night of fct_incidents, one set of rows per run_id: the night's incidents
    (int_incidents), ranked by score, each with the run that first reported it. An incident is
    a (user, day), so its id (the day and the user) is the same every night it is reported.
    First report: the earliest first_run of the same incident among the rows of earlier run
    dates (this table's own kept nights); none, and it is this run's. A rerun of the same date
    replaces the run, so it does not count as an earlier report. -#}

with

incidents as (

    select
        user_name,
        activity_date,
        hours,
        score,
        detectors,
        kind,
        flows,
        usual_flows,
        bytes,
        usual_bytes,
        top_destinations,
        top_ports
    from {{ ref('int_incidents') }}

),

this_run as (

    select
        {{ nightly_run_columns() }}

),

{% if is_incremental() %}
    earlier_reports as (

        select
            previous.incident_id,
            previous.first_run_id,
            previous.first_run_date,
            row_number() over (
                partition by previous.incident_id
                order by previous.first_run_date asc, previous.first_run_id asc
            ) as report_rank
        from {{ this }} as previous
        cross join this_run
        where previous.run_date < this_run.run_date

    ),
{% else %}
    earlier_reports as (

        select
            null::text as incident_id,
            null::text as first_run_id,
            null::date as first_run_date,
            1 as report_rank
        where false

    ),
{% endif %}

identified as (

    select
        to_char(incidents.activity_date, 'YYYY-MM-DD') || ' ' || incidents.user_name as incident_id,
        incidents.user_name,
        incidents.activity_date,
        incidents.hours,
        incidents.score,
        incidents.detectors,
        incidents.kind,
        incidents.flows,
        incidents.usual_flows,
        incidents.bytes,
        incidents.usual_bytes,
        incidents.top_destinations,
        incidents.top_ports
    from incidents

),

ranked as (

    select
        identified.incident_id,
        identified.user_name,
        identified.activity_date,
        identified.hours,
        identified.score,
        identified.detectors,
        identified.kind,
        identified.flows,
        identified.usual_flows,
        identified.bytes,
        identified.usual_bytes,
        identified.top_destinations,
        identified.top_ports,
        (row_number() over (
            order by identified.score desc, identified.activity_date desc, identified.user_name asc
        ))::integer as rank_in_night,
        coalesce(earlier_reports.first_run_id, this_run.run_id) as first_run_id,
        coalesce(earlier_reports.first_run_date, this_run.run_date) as first_run_date,
        earlier_reports.incident_id is null as is_new,
        this_run.run_id,
        this_run.run_date
    from identified
    cross join this_run
    left join earlier_reports
        on
            identified.incident_id = earlier_reports.incident_id
            and earlier_reports.report_rank = 1

)

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
from ranked
