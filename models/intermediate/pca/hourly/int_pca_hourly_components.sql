{#- The principal-component tables of the 24 hours in one, as the backend wrote them
    (pca_sparse_train's output; the sign is oriented downstream, in int_pca_components).
    A table: the hour models replace their tables on every build (a view over them would be
    dropped with them). -#}

with

hours as (

    {{ union_pca_hour_tables('', ["row_id as component_rank", "std_dev", "proportion", "principal_components"]) }}

)

select
    hour_of_day,
    component_rank,
    std_dev,
    proportion,
    principal_components
from hours
