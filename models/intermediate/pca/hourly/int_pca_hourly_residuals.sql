{#- The residual tables of the 24 hours in one: each day's centred counts minus their
    projection on the hour's kept components (pca_sparse_project's _residual table).
    A table: the hour models replace their tables on every build (a view over them would be
    dropped with them). -#}

with

hours as (

    {{ union_pca_hour_tables('_residual', ["row_id as day_index", "row_vec"]) }}

)

select
    hour_of_day,
    day_index,
    row_vec
from hours
