{#- The projection tables of the 24 hours in one: each day in the hour's component
    coordinates (pca_sparse_project's output, with the backend's sign).
    A table: the hour models replace their tables on every build (a view over them would be
    dropped with them). -#}

with

hours as (

    {{ union_pca_hour_tables('_projection', ["row_id as day_index", "row_vec"]) }}

)

select
    hour_of_day,
    day_index,
    row_vec
from hours
