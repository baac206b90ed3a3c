{#- One row per (hour of day, day of the window): the day's squared prediction error (SPE,
    its squared distance to the hour's normal subspace), the hour's Jackson–Mudholkar limit,
    whether the day exceeds it, and the users whose residuals make up most of the SPE. -#}

with

residuals as (

    select
        hour_of_day,
        day_index,
        user_index,
        residual
    from {{ ref('int_pca_spe_residuals') }}

),

limits as (

    select
        hour_of_day,
        normal_components,
        spe_threshold
    from {{ ref('int_pca_spe_limits') }}

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

day_errors as (

    select
        hour_of_day,
        day_index,
        sum(residual * residual) as spe
    from residuals
    group by hour_of_day, day_index

),

contributions as (

    select
        residuals.hour_of_day,
        residuals.day_index,
        users.user_name,
        residuals.residual * residuals.residual as contribution,
        row_number() over (
            partition by residuals.hour_of_day, residuals.day_index
            order by residuals.residual * residuals.residual desc, users.user_name
        ) as contribution_rank
    from residuals
    inner join users on residuals.user_index = users.user_index

),

top_contributions as (

    select
        contributions.hour_of_day,
        contributions.day_index,
        contributions.user_name,
        contributions.contribution_rank,
        case
            when day_errors.spe > 0 then contributions.contribution / day_errors.spe
        end as spe_share
    from contributions
    inner join day_errors
        on
            contributions.hour_of_day = day_errors.hour_of_day
            and contributions.day_index = day_errors.day_index
    where contributions.contribution_rank <= {{ spe_top_users() }}

),

attributions as (

    select
        hour_of_day,
        day_index,
        jsonb_agg(
            jsonb_build_object('user_name', user_name, 'spe_share', spe_share)
            order by contribution_rank
        ) as top_users,
        max(case when contribution_rank = 1 then user_name end) as top_user_name,
        max(case when contribution_rank = 1 then spe_share end) as top_user_share
    from top_contributions
    group by hour_of_day, day_index

),

scored as (

    select
        day_errors.hour_of_day,
        days.activity_date,
        day_errors.day_index,
        day_errors.spe,
        limits.spe_threshold,
        day_errors.spe / limits.spe_threshold as spe_ratio,
        coalesce(day_errors.spe > limits.spe_threshold, false) as is_anomalous,
        limits.normal_components,
        attributions.top_user_name,
        attributions.top_user_share,
        attributions.top_users
    from day_errors
    inner join days on day_errors.day_index = days.day_index
    inner join limits on day_errors.hour_of_day = limits.hour_of_day
    left join attributions
        on
            day_errors.hour_of_day = attributions.hour_of_day
            and day_errors.day_index = attributions.day_index

)

select
    hour_of_day,
    activity_date,
    day_index,
    spe,
    spe_threshold,
    spe_ratio,
    is_anomalous,
    normal_components,
    top_user_name,
    top_user_share,
    top_users,
    {{ nightly_run_columns() }}
from scored
