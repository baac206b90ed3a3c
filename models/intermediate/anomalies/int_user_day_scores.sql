{{ config(materialized='table') }}

{#- Whole-day score: each user's flows on each day of the window against the user's own other
    days. A dormant user waking up raises every hour of one day, which the day × hour model of
    int_cell_spike_scores reads as a busy day (its expectation comes from the same day); here
    the day is compared with the user's other days instead.
    Expectation: the mean of the user's other days, with half a flow added to their total (a
    user silent on every other day expects a little, not nothing). Noise: a negative binomial
    with the dispersion of the other days by moments, φ = max(0, (variance − mean) / mean²),
    so a user whose days vary a lot (weekends, vacations) needs a larger day to stand out.
    The day's tail p = P(X ≥ flows) is exact (macro negative_binomial_tail); a day is anomalous
    when its surprise −ln p exceeds the threshold that lets var `day_false_alarms` normal days
    through per night, fitted to the tail of the night's own day surprises (tail_fit_threshold).
    Only days above their expectation are summed; the others score 0. -#}

with

cells as (

    select
        row_id as day_index,
        col_id as user_index,
        value as flows
    from {{ ref('int_pca_input') }}

),

days as (

    select day_index
    from {{ ref('int_pca_days') }}

),

users as (

    select user_index
    from {{ ref('int_pca_users') }}

),

day_totals as (

    select
        users.user_index,
        days.day_index,
        coalesce(sum(cells.flows), 0) as day_flows
    from users
    cross join days
    left join cells
        on
            users.user_index = cells.user_index
            and days.day_index = cells.day_index
    group by users.user_index, days.day_index

),

user_moments as (

    select
        user_index,
        count(*) as window_days,
        sum(day_flows) as total_flows,
        sum(day_flows * day_flows) as total_squares
    from day_totals
    group by user_index

),

others as (

    select
        day_totals.user_index,
        day_totals.day_index,
        day_totals.day_flows,
        (user_moments.total_flows - day_totals.day_flows) / greatest(user_moments.window_days - 1, 1)
            as other_days_mean,
        (user_moments.total_squares - day_totals.day_flows * day_totals.day_flows)
        / greatest(user_moments.window_days - 1, 1) as other_days_square_mean,
        greatest(user_moments.window_days - 1, 1) as other_days
    from day_totals
    inner join user_moments on day_totals.user_index = user_moments.user_index

),

expected as (

    select
        user_index,
        day_index,
        day_flows,
        other_days_mean,
        other_days_mean + 0.5 / other_days as expected_day_flows,
        case
            when other_days_mean > 0
                then greatest(
                    (other_days_square_mean - other_days_mean * other_days_mean - other_days_mean)
                    / (other_days_mean * other_days_mean),
                    0
                )
            else 0
        end as day_dispersion
    from others

),

candidates as (

    select
        user_index,
        day_index,
        day_flows as flows,
        expected_day_flows as mu,
        day_dispersion as phi
    from expected
    where day_flows > expected_day_flows

),

tails as (

    {{ negative_binomial_tail('candidates', ['user_index', 'day_index']) }}

),

scored as (

    select
        expected.user_index,
        expected.day_index,
        expected.day_flows,
        expected.expected_day_flows,
        expected.day_dispersion,
        coalesce(tails.tail_probability, 1) as tail_probability,
        case
            when tails.tail_probability is null then 0
            else -ln(greatest(tails.tail_probability, 1e-300))
        end as surprise
    from expected
    left join tails
        on
            expected.user_index = tails.user_index
            and expected.day_index = tails.day_index

),

fitted as (

    {{ tail_fit_threshold('scored', '(select count(*) from scored)', day_false_alarms()) }}

)

select
    scored.user_index,
    scored.day_index,
    scored.day_flows,
    scored.expected_day_flows,
    scored.day_dispersion,
    scored.tail_probability,
    scored.surprise as day_surprise,
    fitted.surprise_threshold,
    scored.surprise > fitted.surprise_threshold as is_anomalous
from scored
cross join fitted
