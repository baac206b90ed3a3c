{#- The users of each run's PCA window (int_pca_users, as the run numbered them). -#}

with

users as (

    select
        user_index,
        user_name,
        window_flow_count,
        active_days
    from {{ ref('int_pca_users') }}

)

select
    user_index,
    user_name,
    window_flow_count,
    active_days,
    {{ nightly_run_columns() }}
from users
