{#- fct_day_anomalies of the latest published night: the rows of fct_day_anomalies_history written by the run
    that dim_runs published last. -#}

with

history as (

    select
        hour_of_day,
        activity_date,
        day_index,
        spe,
        spe_threshold,
        spe_ratio,
        is_anomalous,
        normal_components,
        top_user_name,
        top_user_share,
        top_users,
        run_id,
        run_date
    from {{ ref('fct_day_anomalies_history') }}

),

published as (

    {{ latest_published_run() }}

)

select
    history.hour_of_day,
    history.activity_date,
    history.day_index,
    history.spe,
    history.spe_threshold,
    history.spe_ratio,
    history.is_anomalous,
    history.normal_components,
    history.top_user_name,
    history.top_user_share,
    history.top_users,
    history.run_id,
    history.run_date
from history
inner join published on history.run_id = published.run_id
