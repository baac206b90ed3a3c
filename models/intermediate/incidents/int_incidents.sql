{#- One row per incident: a (user, day) with at least one cell flagged by a detector
    (int_incident_cells), with its hours, its strongest night surprise (the score it ranks
    by), the detectors that fired, a kind guess (seed anomaly_kinds) and the evidence an analyst checks first: flows and bytes in
    those hours against the user's usual for them (the mean of the same hours on the user's
    other days of the window), the top destinations and ports of those hours.
    Kind, first rule that holds: many ports of one host is a port scan; a whole-day anomaly
    whose usual traffic is under a tenth of the day's is a dormant user waking up; hours
    flagged by an hourly detector that are usually near silent (each under half a flow and
    under a quarter of the user's mean hour) are off-hours; many new hosts on one port is a
    port scan; a count spike is a spike; big flows to new hosts alone are a new destination; a
    whole-day anomaly alone is volume. -#}

with

flagged as (

    select
        detector,
        hour_of_day,
        day_index,
        user_index,
        night_surprise
    from {{ ref('int_incident_cells') }}

),

days as (

    select
        day_index,
        activity_date
    from {{ ref('int_pca_days') }}

),

users as (

    select
        user_index,
        user_name
    from {{ ref('int_pca_users') }}

),

counts as (

    select
        activity_date,
        hour_of_day,
        user_name,
        flow_count,
        total_bytes
    from {{ ref('int_hourly_counts') }}

),

flows as (

    select
        activity_date,
        hour_of_day,
        user_name,
        host(dst_ip) as dst_host,
        dst_port
    from {{ ref('stg_flows') }}

),

window_counts as (

    select
        users.user_index,
        days.day_index,
        counts.hour_of_day,
        counts.flow_count,
        counts.total_bytes
    from counts
    inner join days on counts.activity_date = days.activity_date
    inner join users on counts.user_name = users.user_name

),

day_count as (

    select count(*) as days_in_window
    from days

),

hour_totals as (

    select
        user_index,
        hour_of_day,
        sum(flow_count) as hour_flows,
        sum(total_bytes) as hour_bytes
    from window_counts
    group by user_index, hour_of_day

),

user_days as (

    select
        window_counts.user_index,
        sum(window_counts.flow_count) / max(day_count.days_in_window) as usual_day_flows
    from window_counts
    cross join day_count
    group by window_counts.user_index

),

incident_hours as (

    select distinct
        user_index,
        day_index,
        hour_of_day
    from flagged

),

-- each flagged hour against the same hour on the user's other days of the window
hour_evidence as (

    select
        incident_hours.user_index,
        incident_hours.day_index,
        incident_hours.hour_of_day,
        coalesce(window_counts.flow_count, 0) as flows,
        coalesce(window_counts.total_bytes, 0) as bytes,
        (coalesce(hour_totals.hour_flows, 0) - coalesce(window_counts.flow_count, 0))::double precision
        / greatest(day_count.days_in_window - 1, 1) as usual_flows,
        (coalesce(hour_totals.hour_bytes, 0) - coalesce(window_counts.total_bytes, 0))::double precision
        / greatest(day_count.days_in_window - 1, 1) as usual_bytes
    from incident_hours
    cross join day_count
    left join window_counts
        on
            incident_hours.user_index = window_counts.user_index
            and incident_hours.day_index = window_counts.day_index
            and incident_hours.hour_of_day = window_counts.hour_of_day
    left join hour_totals
        on
            incident_hours.user_index = hour_totals.user_index
            and incident_hours.hour_of_day = hour_totals.hour_of_day

),

incident_flows as (

    select
        incident_hours.user_index,
        incident_hours.day_index,
        flows.dst_host,
        flows.dst_port
    from incident_hours
    inner join days on incident_hours.day_index = days.day_index
    inner join users on incident_hours.user_index = users.user_index
    inner join flows
        on
            days.activity_date = flows.activity_date
            and incident_hours.hour_of_day = flows.hour_of_day
            and users.user_name = flows.user_name

),

destination_counts as (

    select
        user_index,
        day_index,
        dst_host || ':' || dst_port::text as destination,
        count(*) as destination_flows,
        row_number() over (
            partition by user_index, day_index
            order by count(*) desc, dst_host || ':' || dst_port::text asc
        ) as destination_rank
    from incident_flows
    group by user_index, day_index, dst_host, dst_port

),

port_counts as (

    select
        user_index,
        day_index,
        dst_port,
        count(*) as port_flows,
        row_number() over (partition by user_index, day_index order by count(*) desc, dst_port asc) as port_rank
    from incident_flows
    group by user_index, day_index, dst_port

),

top_destinations as (

    select
        user_index,
        day_index,
        string_agg(destination || ' ×' || destination_flows::text, ', ' order by destination_rank)
            as top_destinations
    from destination_counts
    where destination_rank <= 3
    group by user_index, day_index

),

top_ports as (

    select
        user_index,
        day_index,
        string_agg(dst_port::text || ' ×' || port_flows::text, ', ' order by port_rank) as top_ports
    from port_counts
    where port_rank <= 3
    group by user_index, day_index

),

by_hours as (

    select
        user_index,
        day_index,
        array_agg(hour_of_day order by hour_of_day) as hours,
        sum(flows)::bigint as flows,
        sum(usual_flows) as usual_flows,
        sum(bytes)::bigint as bytes,
        sum(usual_bytes) as usual_bytes,
        max(usual_flows) as most_usual_hour_flows
    from hour_evidence
    group by user_index, day_index

),

by_detectors as (

    select
        user_index,
        day_index,
        max(night_surprise) as score,
        array_agg(distinct detector order by detector) as detectors
    from flagged
    group by user_index, day_index

),

incidents as (

    select
        by_hours.user_index,
        by_hours.day_index,
        by_hours.hours,
        by_detectors.score,
        by_detectors.detectors,
        by_hours.flows,
        by_hours.usual_flows,
        by_hours.bytes,
        by_hours.usual_bytes,
        top_destinations.top_destinations,
        top_ports.top_ports,
        case
            when 'ports_one_host' = any(by_detectors.detectors) then 'port_scan'
            when
                'whole_day' = any(by_detectors.detectors)
                and by_hours.usual_flows < 0.1 * by_hours.flows
                then 'dormant_wake_up'
            when
                by_detectors.detectors <> array['whole_day']
                and by_hours.most_usual_hour_flows
                < least(0.5, 0.25 * coalesce(user_days.usual_day_flows, 0) / 24)
                then 'off_hours'
            when 'new_hosts_one_port' = any(by_detectors.detectors) then 'port_scan'
            when 'residual_spike' = any(by_detectors.detectors) then 'spike'
            when 'big_flows_new_host' = any(by_detectors.detectors) then 'new_destination'
            else 'volume'
        end as kind
    from by_hours
    inner join by_detectors
        on
            by_hours.user_index = by_detectors.user_index
            and by_hours.day_index = by_detectors.day_index
    left join user_days on by_hours.user_index = user_days.user_index
    left join top_destinations
        on
            by_hours.user_index = top_destinations.user_index
            and by_hours.day_index = top_destinations.day_index
    left join top_ports
        on
            by_hours.user_index = top_ports.user_index
            and by_hours.day_index = top_ports.day_index

)

select
    incidents.user_index,
    incidents.day_index,
    users.user_name,
    days.activity_date,
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
inner join days on incidents.day_index = days.day_index
inner join users on incidents.user_index = users.user_index
