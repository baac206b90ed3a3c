-- Users flagged as outliers in more than one hour of day: the first names to look at.
-- `dbt compile --select users_flagged_in_several_hours`, then run the SQL in target/compiled.

with

outliers as (

    select
        hour_of_day,
        user_name,
        outlier_score
    from {{ ref('fct_user_outliers') }}

),

per_user as (

    select
        user_name,
        count(distinct hour_of_day) as hours_flagged,
        max(outlier_score) as max_outlier_score
    from outliers
    group by user_name

)

select
    user_name,
    hours_flagged,
    max_outlier_score
from per_user
where hours_flagged > 1
order by hours_flagged desc, max_outlier_score desc, user_name asc
