{#- fct_user_outliers of the latest published night: the rows of fct_user_outliers_history written by the run
    that dim_runs published last. -#}

with

history as (

    select
        hour_of_day,
        user_name,
        user_index,
        component_rank,
        loading,
        outlier_score,
        rank_in_hour,
        method,
        run_id,
        run_date
    from {{ ref('fct_user_outliers_history') }}

),

published as (

    {{ latest_published_run() }}

)

select
    history.hour_of_day,
    history.user_name,
    history.user_index,
    history.component_rank,
    history.loading,
    history.outlier_score,
    history.rank_in_hour,
    history.method,
    history.run_id,
    history.run_date
from history
inner join published on history.run_id = published.run_id
