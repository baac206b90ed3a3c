{{ config(materialized='view') }}

{#- Valid flows, typed. A file whose first line is not the expected header is distrusted as a
    whole: its lines go to the quarantine instead (the columns may be in another order). -#}

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
    from {{ ref('stg_lake__flow_lines') }}

),

distrusted_files as (

    select
        dt,
        source_file
    from {{ ref('stg_lake__flow_lines') }}
    where line_number = 1 and reject_reason = 'unexpected_header'

),

valid_flows as (

    select
        lines.dt,
        lines.source_file,
        lines.line_number,
        lines.started_at,
        lines.timestamp_format,
        lines.activity_date,
        lines.hour_of_day,
        lines.user_name,
        lines.src_ip,
        lines.dst_ip,
        lines.dst_port,
        lines.protocol,
        lines.bytes,
        lines.loaded_at
    from lines
    left join distrusted_files
        on lines.dt = distrusted_files.dt and lines.source_file = distrusted_files.source_file
    where lines.line_status = 'valid' and distrusted_files.source_file is null

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
from valid_flows
