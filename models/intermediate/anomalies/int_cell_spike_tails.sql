{{ config(materialized='table') }}

{#- The exact negative-binomial upper tail of each (hour, day, user) count: p = P(X ≥ flows)
    for X with mean E and variance E + φE² (φ the user's dispersion; φ = 0 is Poisson), and its
    surprise −ln p. A skewed count is judged by its own law, not by a normal quantile.

    E here is int_cell_spike_scores' expectation with half a flow added to each of its three
    totals (the day's other hours, the hour's other days, the other days' other hours): an hour
    the user never used on the other days has a small expectation, not zero, so one flow there
    is unusual rather than impossible.

    The pmf follows the recurrence P(k + 1) = P(k) · E (1 + kφ) / ((k + 1)(1 + φE)) from
    P(0) = (1 + φE)^(−1/φ) (e^(−E) when φ = 0), summed in logs over k < flows: p = 1 − Σ P(k).
    Below 1e-9 the difference loses digits, so p is then bounded above by P(flows) / (1 − ρ),
    ρ the larger of the ratio at k = flows and its limit φE / (1 + φE): the terms beyond decrease
    at least that fast. Only counts above E are summed; the others have p above one half
    and a surprise of 0 here (they never reach the tail that the threshold is fitted on). -#}

with

scores as (

    select
        hour_of_day,
        day_index,
        user_index,
        flows,
        expected_flows,
        user_dispersion,
        tested_expected_flows
    from {{ ref('int_cell_spike_scores') }}

),

candidates as (

    select
        hour_of_day,
        day_index,
        user_index,
        flows,
        user_dispersion as phi,
        tested_expected_flows as mu
    from scores
    where flows > tested_expected_flows

),

terms as (

    select
        candidates.hour_of_day,
        candidates.day_index,
        candidates.user_index,
        terms.k,
        case
            when candidates.phi > 1e-12 then -ln(1 + candidates.phi * candidates.mu) / candidates.phi
            else -candidates.mu
        end
        + coalesce(sum(
            ln(candidates.mu * (1 + terms.k * candidates.phi))
            - ln((terms.k + 1) * (1 + candidates.phi * candidates.mu))
        ) over preceding_terms, 0) as log_pmf
    from candidates
    cross join lateral generate_series(0, candidates.flows::integer - 1) as terms (k)
    window preceding_terms as (
        partition by candidates.hour_of_day, candidates.day_index, candidates.user_index
        order by terms.k rows between unbounded preceding and 1 preceding
    )

),

lower_sums as (

    select
        terms.hour_of_day,
        terms.day_index,
        terms.user_index,
        sum(exp(terms.log_pmf)) as below_flows,
        -- log P(flows) from the last term: one more step of the recurrence
        max(
            terms.log_pmf
            + ln(candidates.mu * (1 + terms.k * candidates.phi))
            - ln((terms.k + 1) * (1 + candidates.phi * candidates.mu))
        ) filter (where terms.k = candidates.flows - 1) as log_pmf_at_flows
    from terms
    inner join candidates
        on
            terms.hour_of_day = candidates.hour_of_day
            and terms.day_index = candidates.day_index
            and terms.user_index = candidates.user_index
    group by terms.hour_of_day, terms.day_index, terms.user_index

),

tails as (

    select
        candidates.hour_of_day,
        candidates.day_index,
        candidates.user_index,
        case
            when 1 - lower_sums.below_flows > 1e-9 then 1 - lower_sums.below_flows
            else exp(lower_sums.log_pmf_at_flows) / (1 - greatest(
                candidates.mu * (1 + candidates.flows * candidates.phi)
                / ((candidates.flows + 1) * (1 + candidates.phi * candidates.mu)),
                candidates.phi * candidates.mu / (1 + candidates.phi * candidates.mu)
            ))
        end as tail_probability
    from candidates
    inner join lower_sums
        on
            candidates.hour_of_day = lower_sums.hour_of_day
            and candidates.day_index = lower_sums.day_index
            and candidates.user_index = lower_sums.user_index

),

final as (

    select
        scores.hour_of_day,
        scores.day_index,
        scores.user_index,
        scores.flows,
        scores.tested_expected_flows,
        scores.user_dispersion,
        coalesce(tails.tail_probability, 1) as tail_probability,
        -- a bound that underflows to 0 is capped at e^-690, beyond any threshold; cells not
        -- above their expectation score 0 (greatest() would skip a null: the case tests it first)
        case
            when tails.tail_probability is null then 0
            else -ln(greatest(tails.tail_probability, 1e-300))
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
    tested_expected_flows,
    user_dispersion,
    tail_probability,
    spike_surprise
from final
