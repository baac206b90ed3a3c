{{ config(materialized='table') }}

{#- Whole-day score: each user's flows on each day of the window against the user's own other
    days. A dormant user waking up raises every hour of one day, which the day × hour model of
    int_cell_spike_scores reads as a busy day (its expectation comes from the same day); here
    the day is compared with the user's other days instead.
    Expectation: the mean of the user's other days, with half a flow added to their total T (a
    user silent on every other day expects a little, not nothing). Noise: a negative binomial
    whose dispersion adds two parts: the other days' own spread by moments,
    max(0, (variance − mean) / mean²), so a user whose days vary a lot (weekends, vacations)
    needs a larger day to stand out; and the uncertainty of a mean estimated from T + ½ flows,
    1 / (T + ½) (the gamma-Poisson predictive of one more day), without which a near-silent
    user's plug-in mean of a tenth of a flow makes three flows look like a 1e-4 tail.
    The day's tail p = P(X ≥ flows) is exact (macro negative_binomial_tail); surprise −ln p.
    A day that is flagged becomes an incident of all its hours above their usual
    (`excess_hours`, int_incident_cells), so its false alarms are counted in those hours: var
    `day_false_alarms` is in false (user, hour) pairs per night, and the threshold lets through
    day_false_alarms / h normal days, h the mean excess hours of the days the tail fit reads
    (tail_fit_threshold over the night's own day surprises).
    Only days above their expectation are summed; the others score 0. -#}

with

cells as (

    select
        hour_of_day,
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

hour_totals as (

    select
        user_index,
        hour_of_day,
        sum(flows) as hour_flows
    from cells
    group by user_index, hour_of_day

),

-- the hours of each day above the user's mean of that hour on the other days: what a flagged
-- day's incident holds (int_incident_cells)
excess as (

    select
        cells.user_index,
        cells.day_index,
        count(*) as excess_hours
    from cells
    inner join hour_totals
        on
            cells.user_index = hour_totals.user_index
            and cells.hour_of_day = hour_totals.hour_of_day
    where cells.flows * greatest((select count(*) from days) - 1, 1) > hour_totals.hour_flows - cells.flows
    group by cells.user_index, cells.day_index

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
        user_moments.total_flows - day_totals.day_flows as other_days_flows,
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
        end
        -- the mean itself is estimated from the other days' flows (+ ½): its relative variance
        + 1 / (other_days_flows + 0.5) as day_dispersion
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
        coalesce(excess.excess_hours, 0) as excess_hours,
        coalesce(tails.tail_probability, 1) as tail_probability,
        case
            when tails.tail_probability is null then 0
            else -tails.log_tail_probability
        end as surprise
    from expected
    left join tails
        on
            expected.user_index = tails.user_index
            and expected.day_index = tails.day_index
    left join excess
        on
            expected.user_index = excess.user_index
            and expected.day_index = excess.day_index

),

-- the days the tail fit reads (its 1 %, at least 20): their mean excess hours turn the stated
-- false pairs into false days
tail_days as (

    select
        excess_hours,
        row_number() over (order by surprise desc) as surprise_rank
    from scored

),

false_days as (

    select {{ day_false_alarms() }} / greatest(avg(excess_hours), 1) as false_days
    from tail_days
    where surprise_rank <= greatest(ceil(0.01 * (select count(*) from scored)), 20)

),

fitted as (

    {{ tail_fit_threshold('scored', '(select count(*) from scored)', '(select f.false_days from false_days as f)') }}

)

select
    scored.user_index,
    scored.day_index,
    scored.day_flows,
    scored.expected_day_flows,
    scored.day_dispersion,
    scored.excess_hours,
    scored.tail_probability,
    scored.surprise as day_surprise,
    fitted.tail_cells,
    fitted.tail_start,
    fitted.tail_scale,
    fitted.surprise_threshold,
    scored.surprise > fitted.surprise_threshold as is_anomalous
from scored
cross join fitted
