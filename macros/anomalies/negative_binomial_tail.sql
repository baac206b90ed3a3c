{#- The exact upper tail p = P(X ≥ flows) of a negative binomial X with mean `mu` and variance
    mu + phi mu² (phi = 0: Poisson), for each row of `candidates` (a relation or CTE with the
    columns `keys`, flows, mu > 0 and phi ≥ 0; flows a positive integer). Returns a select of
    `keys`, tail_probability and log_tail_probability.
    The pmf follows the recurrence P(k + 1) = P(k) · mu (1 + kφ) / ((k + 1)(1 + φ mu)) from
    P(0) = (1 + φ mu)^(−1/φ) (e^(−mu) when φ = 0), summed in logs over k < flows: p = 1 − Σ P(k).
    Below 1e-9 the difference loses digits, so p is then bounded above by P(flows) / (1 − ρ),
    ρ the larger of the ratio at k = flows and its limit φ mu / (1 + φ mu): the terms beyond
    decrease at least that fast (and never below e^-700). log_tail_probability is ln p, the
    bound taken in logs, so that a surprise −ln p does not stop at about 690 where p underflows:
    tails far beyond any threshold still rank by how far. Cost: one row per unit of flows. -#}
{% macro negative_binomial_tail(candidates, keys) %}
    {%- set on_keys = [] -%}
    {%- for key in keys -%}{%- do on_keys.append('nb_terms.' ~ key ~ ' = nb_cells.' ~ key) -%}{%- endfor -%}
    select
        {% for key in keys %}nb_cells.{{ key }},
        {% endfor -%}
        case
            when 1 - nb_sums.below_flows > 1e-9 then 1 - nb_sums.below_flows
            else exp(greatest(nb_sums.log_pmf_at_flows, -700)) / (1 - greatest(
                nb_cells.mu * (1 + nb_cells.flows * nb_cells.phi)
                / ((nb_cells.flows + 1) * (1 + nb_cells.phi * nb_cells.mu)),
                nb_cells.phi * nb_cells.mu / (1 + nb_cells.phi * nb_cells.mu)
            ))
        end as tail_probability,
        case
            when 1 - nb_sums.below_flows > 1e-9 then ln(1 - nb_sums.below_flows)
            else nb_sums.log_pmf_at_flows - ln(1 - greatest(
                nb_cells.mu * (1 + nb_cells.flows * nb_cells.phi)
                / ((nb_cells.flows + 1) * (1 + nb_cells.phi * nb_cells.mu)),
                nb_cells.phi * nb_cells.mu / (1 + nb_cells.phi * nb_cells.mu)
            ))
        end as log_tail_probability
    from {{ candidates }} as nb_cells
    inner join (
        select
            {% for key in keys %}nb_terms.{{ key }},
            {% endfor -%}
            -- exp() of less than about -745 is an error in PostgreSQL, not 0: such terms add nothing
            sum(exp(greatest(nb_terms.log_pmf, -700))) as below_flows,
            -- log P(flows): one more step of the recurrence from the last term
            max(nb_terms.log_pmf + nb_terms.log_ratio) filter (where nb_terms.is_last) as log_pmf_at_flows
        from (
            select
                {% for key in keys %}nb_cells.{{ key }},
                {% endfor -%}
                nb_k.k = nb_cells.flows - 1 as is_last,
                ln(nb_cells.mu * (1 + nb_k.k * nb_cells.phi)) - ln((nb_k.k + 1) * (1 + nb_cells.phi * nb_cells.mu))
                    as log_ratio,
                case
                    when nb_cells.phi > 1e-12 then -ln(1 + nb_cells.phi * nb_cells.mu) / nb_cells.phi
                    else -nb_cells.mu
                end
                + coalesce(sum(
                    ln(nb_cells.mu * (1 + nb_k.k * nb_cells.phi)) - ln((nb_k.k + 1) * (1 + nb_cells.phi * nb_cells.mu))
                ) over (
                    partition by {% for key in keys %}nb_cells.{{ key }}{{ ', ' if not loop.last }}{% endfor %}
                    order by nb_k.k rows between unbounded preceding and 1 preceding
                ), 0) as log_pmf
            from {{ candidates }} as nb_cells
            cross join lateral generate_series(0, nb_cells.flows::integer - 1) as nb_k (k)
        ) as nb_terms
        group by {% for key in keys %}nb_terms.{{ key }}{{ ', ' if not loop.last }}{% endfor %}
    ) as nb_sums
        on {% for key in keys %}nb_sums.{{ key }} = nb_cells.{{ key }}{{ ' and ' if not loop.last }}{% endfor %}
{%- endmacro %}
