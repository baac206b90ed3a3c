{#- Single-hour spikes: one row per (hour of day, day, user) whose flow count is too far in the
    exact negative-binomial tail of the user's own expectation (int_cell_spike_tails): its
    surprise −ln p exceeds the threshold that lets `spike_false_alarms` normal cells through per
    night, fitted to the tail of the night's own surprises (macro tail_fit_threshold) over
    cells tested = 24 × days × users of the window. spike_threshold keeps the former z
    threshold, Φ⁻¹(1 − spike_false_alarms / cells tested), for reference: it no longer decides.
    rank_in_hour orders the hour's spikes by surprise (ties: z score, date, then user name). -#}

with

tails as (

    select
        hour_of_day,
        day_index,
        user_index,
        flows,
        expected_flows,
        user_dispersion,
        spike_score,
        tested_expected_flows,
        tail_probability,
        spike_surprise as surprise
    from {{ ref('int_cell_spike_tails') }}

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

fitted as (

    {{ tail_fit_threshold('tails', '(select tested.tested_cells from tested)', spike_false_alarms()) }}

),

flagged as (

    select
        tails.hour_of_day,
        days.activity_date,
        tails.day_index,
        users.user_name,
        tails.user_index,
        tails.flows,
        tails.expected_flows,
        tails.user_dispersion,
        tails.spike_score,
        limits.spike_threshold,
        limits.tested_cells,
        tails.tested_expected_flows,
        tails.tail_probability,
        tails.surprise as spike_surprise,
        fitted.surprise_threshold,
        fitted.tail_scale as surprise_tail_scale,
        row_number() over (
            partition by tails.hour_of_day
            order by tails.surprise desc, tails.spike_score desc, days.activity_date asc, users.user_name asc
        ) as rank_in_hour
    from tails
    cross join limits
    cross join fitted
    inner join days on tails.day_index = days.day_index
    inner join users on tails.user_index = users.user_index
    where tails.surprise > fitted.surprise_threshold

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
    tested_expected_flows,
    tail_probability,
    spike_surprise,
    surprise_threshold,
    surprise_tail_scale,
    {{ nightly_run_columns() }}
from flagged
