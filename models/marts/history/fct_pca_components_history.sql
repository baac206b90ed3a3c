{#- Every kept principal component of every hour: its spread, its share of the hour's
    variance, and its loadings over users (position i = user_index i). -#}

with

components as (

    select
        hour_of_day,
        component_rank,
        std_dev,
        eigenvalue,
        proportion,
        cumulative_proportion,
        principal_components
    from {{ ref('int_pca_components') }}

)

select
    hour_of_day,
    component_rank,
    std_dev,
    eigenvalue,
    proportion,
    cumulative_proportion,
    principal_components,
    {{ nightly_run_columns() }}
from components
