{#- One row per hour: the size of its matrix, how many components were kept and how much of
    the variance they explain, and the training and projection diagnostics. -#}

with

training as (

    select
        hour_of_day,
        rows_used,
        train_time_ms,
        recon_error,
        relative_recon_error
    from {{ ref('int_pca_hourly_train_summaries') }}

),

projection as (

    select
        hour_of_day,
        project_time_ms,
        residual_norm,
        relative_residual_norm
    from {{ ref('int_pca_hourly_projection_summaries') }}

),

components as (

    select
        hour_of_day,
        count(*) as components_kept,
        sum(proportion) as explained_proportion
    from {{ ref('int_pca_components') }}
    group by hour_of_day

),

dims as (

    select
        (select count(*) from {{ ref('int_pca_days') }}) as row_dim,
        (select count(*) from {{ ref('int_pca_users') }}) as col_dim

),

summary as (

    select
        training.hour_of_day,
        dims.row_dim,
        dims.col_dim,
        training.rows_used,
        components.components_kept,
        components.explained_proportion,
        training.recon_error,
        training.relative_recon_error,
        projection.residual_norm,
        projection.relative_residual_norm,
        training.train_time_ms,
        projection.project_time_ms
    from training
    inner join projection on training.hour_of_day = projection.hour_of_day
    inner join components on training.hour_of_day = components.hour_of_day
    cross join dims

)

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
    {{ nightly_run_columns() }}
from summary
