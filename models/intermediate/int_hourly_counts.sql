{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['activity_date'],
        on_schema_change='fail',
    )
}}

{#- Flows per user, UTC day and hour of day. Incremental by day: a build recomputes, from all
    staged flows, exactly the days that received flows since the last build (a late file for
    an old day recomputes that day), so reruns are idempotent. -#}

with

flows as (

    select
        activity_date,
        hour_of_day,
        user_name,
        bytes,
        loaded_at
    from {{ ref('stg_flows') }}

),

{% if is_incremental() %}
    changed_days as (

        select distinct flows.activity_date
        from flows
        where flows.loaded_at > (
            select coalesce(max(previous.last_loaded_at), '-infinity'::timestamptz)
            from {{ this }} as previous
        )

    ),
{% endif %}

flows_to_count as (

    select
        flows.activity_date,
        flows.hour_of_day,
        flows.user_name,
        flows.bytes,
        flows.loaded_at
    from flows
    {% if is_incremental() %}
        inner join changed_days on flows.activity_date = changed_days.activity_date
    {% endif %}

),

hourly as (

    select
        activity_date,
        hour_of_day,
        user_name,
        count(*) as flow_count,
        sum(bytes) as total_bytes,
        max(loaded_at) as last_loaded_at
    from flows_to_count
    group by activity_date, hour_of_day, user_name

)

select
    activity_date,
    hour_of_day,
    user_name,
    flow_count,
    total_bytes,
    last_loaded_at
from hourly
