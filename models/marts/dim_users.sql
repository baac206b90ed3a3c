{#- dim_users of the latest published night: the rows of dim_users_history written by the run
    that dim_runs published last. -#}

with

history as (

    select
        user_index,
        user_name,
        window_flow_count,
        active_days,
        run_id,
        run_date
    from {{ ref('dim_users_history') }}

),

published as (

    {{ latest_published_run() }}

)

select
    history.user_index,
    history.user_name,
    history.window_flow_count,
    history.active_days,
    history.run_id,
    history.run_date
from history
inner join published on history.run_id = published.run_id
