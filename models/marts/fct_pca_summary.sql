{#- fct_pca_summary of the latest published night: the rows of fct_pca_summary_history written by the run
    that dim_runs published last. -#}

with

history as (

    select
        hour_of_day,
        row_dim,
        col_dim,
        rows_used,
        components_kept,
        explained_proportion,
        recon_error,
        relative_recon_error,
        residual_norm,
        relative_residual_norm,
        train_time_ms,
        project_time_ms,
        run_id,
        run_date
    from {{ ref('fct_pca_summary_history') }}

),

published as (

    {{ latest_published_run() }}

)

select
    history.hour_of_day,
    history.row_dim,
    history.col_dim,
    history.rows_used,
    history.components_kept,
    history.explained_proportion,
    history.recon_error,
    history.relative_recon_error,
    history.residual_norm,
    history.relative_residual_norm,
    history.train_time_ms,
    history.project_time_ms,
    history.run_id,
    history.run_date
from history
inner join published on history.run_id = published.run_id
