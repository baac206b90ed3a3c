{#- The projection summaries of the 24 hours in one (pca_sparse_project's
    _projection_summary table).
    A table: the hour models replace their tables on every build (a view over them would be
    dropped with them). -#}

with

hours as (

    {{ union_pca_hour_tables('_projection_summary', [
        "exec_time as project_time_ms", "residual_norm", "relative_residual_norm",
    ]) }}

)

select
    hour_of_day,
    project_time_ms,
    residual_norm,
    relative_residual_norm
from hours
