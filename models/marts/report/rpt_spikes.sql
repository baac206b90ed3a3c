{#- Tonight's residual spikes in the order the report shows them: new tonight first (absent
    from the previous kept night's rows, rpt_nights), then the ones already reported; strongest
    first within each. Evidence beside each: the user's usual flows in that hour (median over
    the window) and the cell's flows, destinations, top port and bytes. -#}

with

spikes as (

    select
        hour_of_day,
        activity_date,
        user_name,
        flows,
        expected_flows,
        spike_score,
        spike_threshold,
        run_id,
        run_date
    from {{ ref('fct_user_spikes') }}

),

nights as (

    select
        run_id,
        previous_run_id,
        previous_run_date
    from {{ ref('rpt_nights') }}

),

earlier as (

    select
        run_id,
        user_name,
        activity_date,
        hour_of_day
    from {{ ref('fct_user_spikes_history') }}

),

window_days as (

    select activity_date
    from {{ ref('dim_days') }}

),

counts as (

    select
        user_name,
        activity_date,
        hour_of_day,
        flow_count
    from {{ ref('int_hourly_counts') }}

),

flows as (

    select
        user_name,
        activity_date,
        hour_of_day,
        dst_ip,
        dst_port,
        bytes
    from {{ ref('stg_flows') }}

),

usual as (

    -- the user's flows in that hour on every day of the window (0 when absent)
    select
        spikes.user_name,
        spikes.activity_date,
        spikes.hour_of_day,
        percentile_cont(0.5) within group (order by coalesce(counts.flow_count, 0)) as usual_flows
    from spikes
    cross join window_days
    left join counts
        on
            spikes.user_name = counts.user_name
            and spikes.hour_of_day = counts.hour_of_day
            and window_days.activity_date = counts.activity_date
    group by spikes.user_name, spikes.activity_date, spikes.hour_of_day

),

cell_flows as (

    select
        spikes.user_name,
        spikes.activity_date,
        spikes.hour_of_day,
        count(distinct flows.dst_ip) as destinations,
        mode() within group (order by flows.dst_port) as top_port,
        sum(flows.bytes) as bytes
    from spikes
    inner join flows
        on
            spikes.user_name = flows.user_name
            and spikes.activity_date = flows.activity_date
            and spikes.hour_of_day = flows.hour_of_day
    group by spikes.user_name, spikes.activity_date, spikes.hour_of_day

),

marked as (

    select
        spikes.hour_of_day,
        spikes.activity_date,
        spikes.user_name,
        spikes.flows,
        spikes.expected_flows,
        spikes.spike_score,
        spikes.spike_threshold,
        spikes.run_id,
        spikes.run_date,
        nights.previous_run_date,
        not exists (
            select 1
            from earlier
            where
                earlier.run_id = nights.previous_run_id
                and earlier.user_name = spikes.user_name
                and earlier.activity_date = spikes.activity_date
                and earlier.hour_of_day = spikes.hour_of_day
        ) as is_new
    from spikes
    left join nights on spikes.run_id = nights.run_id

),

final as (

    select
        row_number() over (
            order by
                marked.is_new desc, marked.spike_score desc,
                marked.hour_of_day asc, marked.activity_date asc, marked.user_name asc
        ) as report_rank,
        marked.is_new,
        marked.user_name,
        marked.activity_date,
        marked.hour_of_day,
        marked.flows,
        marked.expected_flows,
        usual.usual_flows,
        marked.spike_score,
        marked.spike_threshold,
        cell_flows.destinations,
        cell_flows.top_port,
        cell_flows.bytes,
        marked.previous_run_date,
        marked.run_id,
        marked.run_date
    from marked
    left join usual
        on
            marked.user_name = usual.user_name
            and marked.activity_date = usual.activity_date
            and marked.hour_of_day = usual.hour_of_day
    left join cell_flows
        on
            marked.user_name = cell_flows.user_name
            and marked.activity_date = cell_flows.activity_date
            and marked.hour_of_day = cell_flows.hour_of_day

)

select
    report_rank,
    is_new,
    user_name,
    activity_date,
    hour_of_day,
    flows,
    expected_flows,
    usual_flows,
    spike_score,
    spike_threshold,
    destinations,
    top_port,
    bytes,
    previous_run_date,
    run_id,
    run_date
from final
