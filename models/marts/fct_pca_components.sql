{#- fct_pca_components of the latest published night: the rows of fct_pca_components_history written by the run
    that dim_runs published last. -#}

with

history as (

    select
        hour_of_day,
        component_rank,
        std_dev,
        eigenvalue,
        proportion,
        cumulative_proportion,
        principal_components,
        run_id,
        run_date
    from {{ ref('fct_pca_components_history') }}

),

published as (

    {{ latest_published_run() }}

)

select
    history.hour_of_day,
    history.component_rank,
    history.std_dev,
    history.eigenvalue,
    history.proportion,
    history.cumulative_proportion,
    history.principal_components,
    history.run_id,
    history.run_date
from history
inner join published on history.run_id = published.run_id
