{#- The lake behind tonight's report: lines loaded as flows and lines quarantined, by reason
    (stg_flows__quarantine), with the newest load and the newest day of traffic (freshness). -#}

with

flows as (

    select
        activity_date,
        loaded_at
    from {{ ref('stg_flows') }}

),

quarantine as (

    select
        reject_reason,
        loaded_at
    from {{ ref('stg_flows__quarantine') }}

),

loaded as (

    select
        'loaded' as line_status,
        cast(null as text) as reject_reason,
        count(*) as line_count,
        max(loaded_at) as latest_loaded_at,
        max(activity_date) as latest_activity_date
    from flows

),

quarantined as (

    select
        'quarantined' as line_status,
        reject_reason,
        count(*) as line_count,
        max(loaded_at) as latest_loaded_at,
        cast(null as date) as latest_activity_date
    from quarantine
    group by reject_reason

),

final as (

    select * from loaded
    union all
    select * from quarantined

)

select
    line_status,
    reject_reason,
    line_count,
    latest_loaded_at,
    latest_activity_date
from final
