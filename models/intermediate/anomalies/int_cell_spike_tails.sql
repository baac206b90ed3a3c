{{ config(materialized='table') }}

{#- The exact negative-binomial upper tail of each (hour, day, user) count: p = P(X ≥ flows)
    for X with mean E and variance E + φE² (φ the user's dispersion; φ = 0 is Poisson), and its
    surprise −ln p. A skewed count is judged by its own law, not by a normal quantile.

    E here is int_cell_spike_scores' expectation with half a flow added to each of its three
    totals (the day's other hours, the hour's other days, the other days' other hours): an hour
    the user never used on the other days has a small expectation, not zero, so one flow there
    is unusual rather than impossible. φ here is the user's dispersion plus the relative
    variance of E as an estimate from those three totals (estimate_dispersion): a plug-in E of
    a twentieth of a flow, read off a few flows, does not make four flows a 1e-6 tail.

    The tail is summed exactly by the macro negative_binomial_tail (one row per flow). Only
    counts above E are summed; the others have p above one half and a surprise of 0 here (they
    never reach the tail that the threshold is fitted on).

    It carries the scores' columns (expected_flows, spike_score) beside the tail, so that what
    reads the cells (fct_user_spikes_history) reads them here alone. -#}

with

scores as (

    select
        hour_of_day,
        day_index,
        user_index,
        flows,
        expected_flows,
        user_dispersion,
        spike_score,
        tested_expected_flows,
        user_dispersion + estimate_dispersion as tested_dispersion
    from {{ ref('int_cell_spike_scores') }}

),

candidates as (

    select
        hour_of_day,
        day_index,
        user_index,
        flows,
        tested_dispersion as phi,
        tested_expected_flows as mu
    from scores
    where flows > tested_expected_flows

),

tails as (

    {{ negative_binomial_tail('candidates', ['hour_of_day', 'day_index', 'user_index']) }}

),

final as (

    select
        scores.hour_of_day,
        scores.day_index,
        scores.user_index,
        scores.flows,
        scores.expected_flows,
        scores.spike_score,
        scores.tested_expected_flows,
        scores.user_dispersion,
        scores.tested_dispersion,
        coalesce(tails.tail_probability, 1) as tail_probability,
        -- ln p from the macro, which does not underflow where p does; cells not above their
        -- expectation score 0
        case
            when tails.tail_probability is null then 0
            else -tails.log_tail_probability
        end as spike_surprise
    from scores
    left join tails
        on
            scores.hour_of_day = tails.hour_of_day
            and scores.day_index = tails.day_index
            and scores.user_index = tails.user_index

)

select
    hour_of_day,
    day_index,
    user_index,
    flows,
    expected_flows,
    spike_score,
    tested_expected_flows,
    user_dispersion,
    tested_dispersion,
    tail_probability,
    spike_surprise
from final
