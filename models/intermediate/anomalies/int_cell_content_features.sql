{#- What the flows of each (hour, day, user) cell of the window carry beyond their number,
    three counts per cell with flows (from stg_flows; a host is new when the user contacted it
    on no other day of the window):
    * big_flows_new_host: flows of more than 50 kB (51,200 bytes) to new hosts (data sent to,
      or fetched from, somewhere the user does not go);
    * ports_one_host: the most distinct ports the user reached on one host, less one (a host
      used on one port scores 0; a vertical scan, many);
    * new_hosts_one_port: the most new hosts the user reached on one port other than 80 and 443
      (web ports are where new hosts are normal; a horizontal scan or a new service is not). -#}

with

flows as (

    select
        activity_date,
        hour_of_day,
        user_name,
        host(dst_ip) as dst_host,
        dst_port,
        bytes
    from {{ ref('stg_flows') }}

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

window_flows as (

    select
        flows.hour_of_day,
        days.day_index,
        users.user_index,
        flows.dst_host,
        flows.dst_port,
        flows.bytes
    from flows
    inner join days on flows.activity_date = days.activity_date
    inner join users on flows.user_name = users.user_name

),

marked as (

    select
        hour_of_day,
        day_index,
        user_index,
        dst_host,
        dst_port,
        bytes,
        -- contacted on this day only: on no other day of the window (a window, not a join back
        -- to per-host counts, whose plan on freshly loaded tables without statistics could be a
        -- nested loop of minutes)
        min(day_index) over user_host = max(day_index) over user_host as is_new_host
    from window_flows
    window user_host as (partition by user_index, dst_host)

),

-- per host of each cell: its ports, and the big flows if it is new
per_host as (

    select
        hour_of_day,
        day_index,
        user_index,
        count(*) filter (where is_new_host and bytes > 51200) as big_flows_new_host,
        count(distinct dst_port) - 1 as ports_one_host,
        null::bigint as new_hosts_one_port
    from marked
    group by hour_of_day, day_index, user_index, dst_host

),

-- per port other than the web's of each cell: its new hosts
per_port as (

    select
        hour_of_day,
        day_index,
        user_index,
        null::bigint as big_flows_new_host,
        null::bigint as ports_one_host,
        count(distinct dst_host) as new_hosts_one_port
    from marked
    where is_new_host and dst_port not in (80, 443)
    group by hour_of_day, day_index, user_index, dst_port

),

-- one aggregation over both, with no join: every cell with flows has a host
parts as (

    select
        hour_of_day,
        day_index,
        user_index,
        big_flows_new_host,
        ports_one_host,
        new_hosts_one_port
    from per_host
    union all
    select
        hour_of_day,
        day_index,
        user_index,
        big_flows_new_host,
        ports_one_host,
        new_hosts_one_port
    from per_port

)

select
    hour_of_day,
    day_index,
    user_index,
    sum(big_flows_new_host)::bigint as big_flows_new_host,
    max(ports_one_host) as ports_one_host,
    coalesce(max(new_hosts_one_port), 0) as new_hosts_one_port
from parts
group by hour_of_day, day_index, user_index
