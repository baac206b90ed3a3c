{#- The threshold on a surprise score (−ln of a tail probability) that lets through, on a night
    without anomalies, `false_alarms` cells on average out of `tested` cells. An exponential tail
    is fitted to the night's own scores: the `tail_share` (1 %) highest scores of the tested
    cells (at least 20) start at u, the `tail_start`, and their median exceeds it by β ln 2 (β
    the `tail_scale`; the median rather than the mean, so that a few true anomalies with huge
    scores do not inflate it); the tail then predicts tested · share · e^(−(t − u)/β) scores above t, which is
    `false_alarms` at t = u + β ln(tail cells / false_alarms).
    If the tail probabilities were exact, the surprise would be exponential with β = 1 and t
    would be Bonferroni's −ln(false_alarms / tested); a model that under-states its tails (plug-in
    expectations, rhythm shifts) shows β > 1 and the threshold moves up accordingly. It never
    moves below Bonferroni's: the cells that set u and β are the bulk of the tail (one or two
    flows against a small expectation, a handful of discrete values), which can say that the
    far tail is heavier than the model's but not that it is lighter; on clean calibration lakes
    the content features' fit fell below it and let through several times its rate.
    `scores`: a relation or CTE with a column `surprise` (cells absent from it score 0);
    `tested`: a SQL expression of the number of cells tested. Returns a select of one row. -#}
{% macro tail_fit_threshold(scores, tested, false_alarms, tail_share=0.01) %}
    select
        fit.tested_cells,
        fit.tail_cells,
        fit.tail_start,
        fit.tail_scale,
        -- never below Bonferroni's: a fit on the bulk of a discrete tail cannot show the model's
        -- tails to be heavier than the truth's, only lighter (as β is never below 1)
        greatest(
            fit.tail_start + fit.tail_scale * ln(fit.tail_cells / {{ false_alarms }}::double precision),
            ln(fit.tested_cells / {{ false_alarms }}::double precision)
        ) as surprise_threshold
    from (
        select
            ranked.tested_cells,
            count(*) as tail_cells,
            min(ranked.surprise) as tail_start,
            -- the median excess over the tail's lowest score / ln 2 (an exponential's median is
            -- β ln 2): a few huge true anomalies do not move it, as they would the mean; never
            -- below 1, the exact-tail value
            greatest(
                (percentile_cont(0.5) within group (order by ranked.surprise) - min(ranked.surprise)) / ln(2),
                1
            ) as tail_scale
        from (
            select
                tail_scores.surprise,
                ({{ tested }})::bigint as tested_cells,
                row_number() over (order by tail_scores.surprise desc) as surprise_rank
            from {{ scores }} as tail_scores
        ) as ranked
        where ranked.surprise_rank <= greatest(ceil({{ tail_share }} * ranked.tested_cells), 20)
        group by ranked.tested_cells
    ) as fit
{%- endmacro %}
