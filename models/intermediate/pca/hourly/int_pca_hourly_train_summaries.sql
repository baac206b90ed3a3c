{#- The training summaries of the 24 hours in one (pca_sparse_train's _summary table).
    A table: the hour models replace their tables on every build (a view over them would be
    dropped with them). -#}

with

hours as (

    {{ union_pca_hour_tables('_summary', [
        "rows_used", '"exec_time (ms)" as train_time_ms', "recon_error", "relative_recon_error",
    ]) }}

)

select
    hour_of_day,
    rows_used,
    train_time_ms,
    recon_error,
    relative_recon_error
from hours
