{#- Each content feature of each (hour, day, user) cell (int_cell_content_features) against
    the user's own other cells of the window: the feature's value x in the cell against a
    negative binomial whose mean is the user's mean of that feature over the other
    24 × days − 1 cells (plus half a unit spread over them: a user who never showed the feature
    expects a little, not nothing) and whose dispersion is theirs by moments,
    max(0, (variance − mean) / mean²), plus 1 / (their total + ½), the uncertainty of a mean
    read off that total (without it, a user's first three big flows to new hosts against a
    plug-in mean of a hundredth would be a 1e-6 tail). p = P(X ≥ x) exactly (negative_binomial_tail),
    surprise −ln p. A cell's feature is flagged when its surprise exceeds the threshold that lets
    var `content_false_alarms` normal cells through per night, fitted to the night's own
    surprises (tail_fit_threshold) over 3 features × 24 × days × users tested.
    One row per feature of each cell with a value above 0; values not above their expectation
    score 0. -#}

with

features as (

    select
        hour_of_day,
        day_index,
        user_index,
        big_flows_new_host,
        ports_one_host,
        new_hosts_one_port
    from {{ ref('int_cell_content_features') }}

),

days as (

    select day_index
    from {{ ref('int_pca_days') }}

),

users as (

    select user_index
    from {{ ref('int_pca_users') }}

),

cells_per_user as (

    select 24 * count(*) as user_cells
    from days

),

values_long as (

    select
        'big_flows_new_host' as feature,
        hour_of_day,
        day_index,
        user_index,
        big_flows_new_host as feature_value
    from features
    where big_flows_new_host > 0
    union all
    select
        'ports_one_host' as feature,
        hour_of_day,
        day_index,
        user_index,
        ports_one_host as feature_value
    from features
    where ports_one_host > 0
    union all
    select
        'new_hosts_one_port' as feature,
        hour_of_day,
        day_index,
        user_index,
        new_hosts_one_port as feature_value
    from features
    where new_hosts_one_port > 0

),

user_moments as (

    select
        user_index,
        feature,
        sum(feature_value) as value_sum,
        sum(feature_value * feature_value) as square_sum
    from values_long
    group by user_index, feature

),

others as (

    select
        values_long.feature,
        values_long.hour_of_day,
        values_long.day_index,
        values_long.user_index,
        values_long.feature_value,
        (user_moments.value_sum - values_long.feature_value)::double precision
        / greatest(cells_per_user.user_cells - 1, 1) as other_mean,
        (user_moments.square_sum - values_long.feature_value * values_long.feature_value)::double precision
        / greatest(cells_per_user.user_cells - 1, 1) as other_square_mean,
        greatest(cells_per_user.user_cells - 1, 1) as other_cells,
        user_moments.value_sum - values_long.feature_value as other_sum
    from values_long
    inner join user_moments
        on
            values_long.user_index = user_moments.user_index
            and values_long.feature = user_moments.feature
    cross join cells_per_user

),

expected as (

    select
        feature,
        hour_of_day,
        day_index,
        user_index,
        feature_value,
        other_mean + 0.5 / other_cells as expected_value,
        case
            when other_mean > 0
                then greatest(
                    (other_square_mean - other_mean * other_mean - other_mean) / (other_mean * other_mean), 0
                )
            else 0
        end
        -- the mean itself is read off the other cells' total (+ ½): its relative variance
        + 1 / (other_sum + 0.5) as dispersion
    from others

),

candidates as (

    select
        feature,
        hour_of_day,
        day_index,
        user_index,
        feature_value as flows,
        expected_value as mu,
        dispersion as phi
    from expected
    where feature_value > expected_value

),

tails as (

    {{ negative_binomial_tail('candidates', ['feature', 'hour_of_day', 'day_index', 'user_index']) }}

),

scored as (

    select
        expected.feature,
        expected.hour_of_day,
        expected.day_index,
        expected.user_index,
        expected.feature_value,
        expected.expected_value,
        expected.dispersion,
        coalesce(tails.tail_probability, 1) as tail_probability,
        case
            when tails.tail_probability is null then 0
            else -tails.log_tail_probability
        end as surprise
    from expected
    left join tails
        on
            expected.feature = tails.feature
            and expected.hour_of_day = tails.hour_of_day
            and expected.day_index = tails.day_index
            and expected.user_index = tails.user_index

),

tested as (

    select 3 * cells_per_user.user_cells * (select count(*) from users) as tested_cells
    from cells_per_user

),

fitted as (

    {{ tail_fit_threshold('scored', '(select tested.tested_cells from tested)', content_false_alarms()) }}

)

select
    scored.feature,
    scored.hour_of_day,
    scored.day_index,
    scored.user_index,
    scored.feature_value,
    scored.expected_value,
    scored.dispersion,
    scored.tail_probability,
    scored.surprise,
    fitted.tail_cells,
    fitted.tail_start,
    fitted.tail_scale,
    fitted.surprise_threshold,
    scored.surprise > fitted.surprise_threshold as is_flagged
from scored
cross join fitted
