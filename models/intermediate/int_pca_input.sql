{{
    config(
        materialized='table',
        post_hook=["create index if not exists {{ this.identifier }}__hour on {{ this }} (hour_of_day)"],
    )
}}

{#- The 24 hourly PCA matrices as sparse triples: for hour h, row_id = day index, col_id =
    user index, value = that user's flow count in hour h of that day. Cells without flows are
    absent (zero). -#}

with

counts as (

    select
        activity_date,
        hour_of_day,
        user_name,
        flow_count
    from {{ ref('int_hourly_counts') }}

),

days as (

    select
        day_index,
        activity_date
    from {{ ref('int_pca_days') }}

),

users as (

    select
        user_index,
        user_name
    from {{ ref('int_pca_users') }}

),

triples as (

    select
        counts.hour_of_day,
        days.day_index as row_id,
        users.user_index as col_id,
        counts.flow_count::double precision as value
    from counts
    inner join days on counts.activity_date = days.activity_date
    inner join users on counts.user_name = users.user_name

)

select
    hour_of_day,
    row_id,
    col_id,
    value
from triples
