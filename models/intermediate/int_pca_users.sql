{#- Users with at least one flow in the PCA window, numbered in name order: `user_index` is
    the col_id of every hourly PCA matrix and the position in each principal component. -#}

with

window_counts as (

    select
        counts.user_name,
        counts.flow_count,
        counts.activity_date
    from {{ ref('int_hourly_counts') }} as counts
    inner join {{ ref('int_pca_days') }} as days on counts.activity_date = days.activity_date

),

users as (

    select
        user_name,
        sum(flow_count) as window_flow_count,
        count(distinct activity_date) as active_days
    from window_counts
    group by user_name

)

select
    row_number() over (order by user_name)::int as user_index,
    user_name,
    window_flow_count,
    active_days
from users
