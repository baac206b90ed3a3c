{{ config(materialized='table') }}

{#- How far each (hour, day, user) flow count rises above what the user's own traffic predicts.

    Expected count: the independence model of the user's days × hours table, with the cell
    itself left out: E0 = (day total − x) (hour total − x) / (user total − day total − hour
    total + x), the user's volume that day in the other hours times the user's share of
    that hour on the other days. A busy day, a weekend or a vacation moves the whole row and
    is expected; one hour far above the user's rhythm is not. A person's day also starts an
    hour early or late now and then, so the expectation E is the largest of the shares of
    hours h − 1, h and h + 1 (same denominator; hours wrap at midnight, so 23 and 0 are
    neighbours: a night worker's shift that runs past midnight is a shift, not a spike): a
    count that the neighbouring hour would explain is not a spike.
    Noise: a negative binomial (Poisson with a gamma-distributed rate), variance E + φ E², φ
    the user's overdispersion by the method of moments around the plain model over all cells
    of the user's table (zero cells included), φ = max(0, Σ((x − E0)² − E0) / Σ E0²).
    Score: z = (x − E) / sqrt(max(E + φ E², 1)); the floor of 1 flow keeps a cell whose
    expectation is near zero from turning one or two flows into a large score.
    Only cells with flows are kept: a cell without flows cannot rise above its expectation. -#}

with

cells as (

    select
        hour_of_day,
        row_id as day_index,
        col_id as user_index,
        value as flows
    from {{ ref('int_pca_input') }}

),

day_totals as (

    select
        user_index,
        day_index,
        sum(flows) as day_flows
    from cells
    group by user_index, day_index

),

hour_totals as (

    select
        user_index,
        hour_of_day,
        sum(flows) as hour_flows
    from cells
    group by user_index, hour_of_day

),

days as (

    select day_index
    from {{ ref('int_pca_days') }}

),

user_totals as (

    select
        user_index,
        sum(flows) as user_flows
    from cells
    group by user_index

),

grid as (

    select
        user_totals.user_index,
        days.day_index,
        hours.hour_of_day,
        user_totals.user_flows
    from user_totals
    cross join days
    cross join generate_series(0, 23) as hours (hour_of_day)

),

left_out as (

    select
        grid.hour_of_day,
        grid.day_index,
        grid.user_index,
        coalesce(cells.flows, 0) as flows,
        coalesce(day_totals.day_flows, 0) - coalesce(cells.flows, 0) as other_hours_flows,
        coalesce(hour_totals.hour_flows, 0) - coalesce(cells.flows, 0) as other_days_flows,
        grid.user_flows - coalesce(day_totals.day_flows, 0) as other_days_all_hours_flows
    from grid
    left join cells
        on
            grid.hour_of_day = cells.hour_of_day
            and grid.day_index = cells.day_index
            and grid.user_index = cells.user_index
    left join day_totals
        on
            grid.user_index = day_totals.user_index
            and grid.day_index = day_totals.day_index
    left join hour_totals
        on
            grid.user_index = hour_totals.user_index
            and grid.hour_of_day = hour_totals.hour_of_day

),

neighbours as (

    select
        hour_of_day,
        day_index,
        user_index,
        flows,
        other_hours_flows,
        other_days_flows,
        other_days_all_hours_flows - other_days_flows as share_denominator,
        -- The grid holds all 24 hours of every (user, day): hour 0's earlier hour is the
        -- day's hour 23, hour 23's later hour its hour 0.
        coalesce(
            lag(other_days_flows) over day_hours, last_value(other_days_flows) over whole_day
        ) as earlier_hour_other_days_flows,
        coalesce(
            lead(other_days_flows) over day_hours, first_value(other_days_flows) over whole_day
        ) as later_hour_other_days_flows
    from left_out
    window
        day_hours as (partition by user_index, day_index order by hour_of_day),
        whole_day as (
            day_hours rows between unbounded preceding and unbounded following
        )

),

expected as (

    select
        hour_of_day,
        day_index,
        user_index,
        flows,
        case
            when share_denominator > 0 then other_hours_flows * other_days_flows / share_denominator
            else 0
        end as plain_expected_flows,
        case
            when share_denominator > 0
                then other_hours_flows * greatest(
                    other_days_flows, earlier_hour_other_days_flows, later_hour_other_days_flows
                ) / share_denominator
            else 0
        end as expected_flows,
        -- half a flow more in each total: what the exact tail (int_cell_spike_tails) tests
        (other_hours_flows + 0.5) * (
            greatest(other_days_flows, earlier_hour_other_days_flows, later_hour_other_days_flows) + 0.5
        ) / (share_denominator + 0.5) as tested_expected_flows,
        -- its relative variance as an estimate: the three totals are disjoint counts, each
        -- roughly Poisson, so their relative variances add (a mean read off a handful of flows
        -- is uncertain, and the tail test must widen by that much)
        1 / (other_hours_flows + 0.5)
        + 1 / (greatest(other_days_flows, earlier_hour_other_days_flows, later_hour_other_days_flows) + 0.5)
        + 1 / (share_denominator + 0.5) as estimate_dispersion
    from neighbours

),

dispersion as (

    select
        user_index,
        case
            when sum(plain_expected_flows * plain_expected_flows) > 0
                then greatest(
                    sum((flows - plain_expected_flows) * (flows - plain_expected_flows) - plain_expected_flows)
                    / sum(plain_expected_flows * plain_expected_flows),
                    0
                )
            else 0
        end as user_dispersion
    from expected
    group by user_index

),

scored as (

    select
        expected.hour_of_day,
        expected.day_index,
        expected.user_index,
        expected.flows,
        expected.expected_flows,
        expected.tested_expected_flows,
        expected.estimate_dispersion,
        dispersion.user_dispersion,
        (expected.flows - expected.expected_flows)
        / sqrt(greatest(
            expected.expected_flows + dispersion.user_dispersion * expected.expected_flows * expected.expected_flows,
            1
        )) as spike_score
    from expected
    inner join dispersion on expected.user_index = dispersion.user_index
    where expected.flows > 0

)

select
    hour_of_day,
    day_index,
    user_index,
    flows,
    expected_flows,
    tested_expected_flows,
    estimate_dispersion,
    user_dispersion,
    spike_score
from scored
