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

host_days as (

    select
        user_index,
        dst_host,
        count(distinct day_index) as contact_days
    from window_flows
    group by user_index, dst_host

),

marked as (

    select
        window_flows.hour_of_day,
        window_flows.day_index,
        window_flows.user_index,
        window_flows.dst_host,
        window_flows.dst_port,
        window_flows.bytes,
        -- contacted on this day only: on no other day of the window
        host_days.contact_days = 1 as is_new_host
    from window_flows
    inner join host_days
        on
            window_flows.user_index = host_days.user_index
            and window_flows.dst_host = host_days.dst_host

),

big_new as (

    select
        hour_of_day,
        day_index,
        user_index,
        count(*) filter (where is_new_host and bytes > 51200) as big_flows_new_host
    from marked
    group by hour_of_day, day_index, user_index

),

host_ports as (

    select
        hour_of_day,
        day_index,
        user_index,
        max(host_port_count) - 1 as ports_one_host
    from (
        select
            hour_of_day,
            day_index,
            user_index,
            count(distinct dst_port) as host_port_count
        from marked
        group by hour_of_day, day_index, user_index, dst_host
    ) as per_host
    group by hour_of_day, day_index, user_index

),

port_hosts as (

    select
        hour_of_day,
        day_index,
        user_index,
        max(new_host_count) as new_hosts_one_port
    from (
        select
            hour_of_day,
            day_index,
            user_index,
            count(distinct dst_host) as new_host_count
        from marked
        where is_new_host and dst_port not in (80, 443)
        group by hour_of_day, day_index, user_index, dst_port
    ) as per_port
    group by hour_of_day, day_index, user_index

)

select
    big_new.hour_of_day,
    big_new.day_index,
    big_new.user_index,
    big_new.big_flows_new_host,
    host_ports.ports_one_host,
    coalesce(port_hosts.new_hosts_one_port, 0) as new_hosts_one_port
from big_new
inner join host_ports
    on
        big_new.hour_of_day = host_ports.hour_of_day
        and big_new.day_index = host_ports.day_index
        and big_new.user_index = host_ports.user_index
left join port_hosts
    on
        big_new.hour_of_day = port_hosts.hour_of_day
        and big_new.day_index = port_hosts.day_index
        and big_new.user_index = port_hosts.user_index
