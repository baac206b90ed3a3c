{#- The column means of the 24 hours in one: each user's mean flows in the hour over the
    window's days (pca_sparse_train's _mean table).
    A table: the hour models replace their tables on every build (a view over them would be
    dropped with them). -#}

with

hours as (

    {{ union_pca_hour_tables('_mean', ["column_mean"]) }}

)

select
    hour_of_day,
    column_mean
from hours
