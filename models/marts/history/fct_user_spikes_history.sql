{#- Single-hour spikes: one row per (hour of day, day, user) whose flow count rises above the
    user's own expectation (int_cell_spike_scores) by more than the Bonferroni threshold
    Φ⁻¹(1 − spike_false_alarms / cells tested), cells tested = 24 × days × users of the window.
    rank_in_hour orders the hour's spikes by score (ties: date, then user name). -#}

with

scores as (

    select
        hour_of_day,
        day_index,
        user_index,
        flows,
        expected_flows,
        user_dispersion,
        spike_score
    from {{ ref('int_cell_spike_scores') }}

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

day_count as (

    select count(*) as days_in_window
    from days

),

user_count as (

    select count(*) as users_in_window
    from users

),

tested as (

    select 24 * day_count.days_in_window * user_count.users_in_window as tested_cells
    from day_count
    cross join user_count

),

limits as (

    select
        tested.tested_cells,
        {{ normal_quantile('1 - ' ~ spike_false_alarms() ~ ' / greatest(tested.tested_cells, 1)') }} as spike_threshold
    from tested
    -- offset 0: the quantile once, not inlined into the filter of every cell below
    offset 0  -- noqa: AM09

),

flagged as (

    select
        scores.hour_of_day,
        days.activity_date,
        scores.day_index,
        users.user_name,
        scores.user_index,
        scores.flows,
        scores.expected_flows,
        scores.user_dispersion,
        scores.spike_score,
        limits.spike_threshold,
        limits.tested_cells,
        row_number() over (
            partition by scores.hour_of_day
            order by scores.spike_score desc, days.activity_date asc, users.user_name asc
        ) as rank_in_hour
    from scores
    cross join limits
    inner join days on scores.day_index = days.day_index
    inner join users on scores.user_index = users.user_index
    where scores.spike_score > limits.spike_threshold

)

select
    hour_of_day,
    activity_date,
    day_index,
    user_name,
    user_index,
    flows,
    expected_flows,
    user_dispersion,
    spike_score,
    spike_threshold,
    tested_cells,
    rank_in_hour,
    'residual_spike' as method,
    {{ nightly_run_columns() }}
from flagged
