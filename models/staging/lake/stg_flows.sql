{{ config(materialized='view') }}

{#- Valid flows, typed: the lake lines that passed every check (see base_lake__flow_lines). -#}

with

lines as (

    select
        dt,
        source_file,
        line_number,
        line_status,
        started_at,
        timestamp_format,
        activity_date,
        hour_of_day,
        user_name,
        src_ip,
        dst_ip,
        dst_port,
        protocol,
        bytes,
        loaded_at
    from {{ ref('base_lake__flow_lines') }}

)

select
    dt,
    source_file,
    line_number,
    started_at,
    timestamp_format,
    activity_date,
    hour_of_day,
    user_name,
    src_ip,
    dst_ip,
    dst_port,
    protocol,
    bytes,
    loaded_at
from lines
where line_status = 'valid'
