{#- Every lake line, once: the union of the staging shards, each of which loads its own lake
    days in its own backend (see macros/staging/flow_lines_shard_model.sql; a shard added
    there is added here too). A view: the planner pushes filters (dt, activity_date,
    loaded_at) into each shard's indexes. -#}

with

shard_0 as (

    select
        dt,
        source_file,
        line_number,
        line_status,
        reject_reason,
        rejected_line,
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
    from {{ ref('base_lake__flow_lines_shard_0') }}

),

shard_1 as (

    select
        dt,
        source_file,
        line_number,
        line_status,
        reject_reason,
        rejected_line,
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
    from {{ ref('base_lake__flow_lines_shard_1') }}

),

unioned as (

    select
        dt,
        source_file,
        line_number,
        line_status,
        reject_reason,
        rejected_line,
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
    from shard_0

    union all

    select
        dt,
        source_file,
        line_number,
        line_status,
        reject_reason,
        rejected_line,
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
    from shard_1

)

select
    dt,
    source_file,
    line_number,
    line_status,
    reject_reason,
    rejected_line,
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
from unioned
