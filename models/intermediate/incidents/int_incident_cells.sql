{#- The (hour, day, user) cells that a detector flags, one row per detector and cell, with the
    detector's surprise −ln p and its night surprise (macro night_surprise: −ln of the normal
    findings per night that detector makes at least that surprising, by its own tail fit, so
    that detectors that test more cells or whose tails the model under-states are not favoured):
    what fct_incidents groups into incidents and ranks by.
    * `residual_spike`: the cells of int_cell_spike_tails above the night's threshold for var
      `spike_false_alarms` (the same fit as fct_user_spikes_history: macro tail_fit_threshold
      over 24 × days × users cells tested);
    * `whole_day`: the (user, day) pairs int_user_day_scores calls anomalous, at the hours of
      that day whose flows exceed the user's mean of that hour on the other days of the window
      (the hours that made the day; a dormant user's every active hour), with the day's surprise,
      unless the hours the hourly detectors below flagged that day hold at least half of the
      day's excess over its expectation (the day is then theirs: a spike raises its day too);
    * `big_flows_new_host`, `ports_one_host`, `new_hosts_one_port`: the content features of
      int_cell_content_scores above the night's threshold for var `content_false_alarms`. -#}

with

tails as (

    select
        hour_of_day,
        day_index,
        user_index,
        spike_surprise as surprise
    from {{ ref('int_cell_spike_tails') }}

),

content as (

    select
        feature as detector,
        hour_of_day,
        day_index,
        user_index,
        surprise,
        {{ night_surprise('surprise', 'tail_start', 'tail_scale', 'tail_cells') }} as night_surprise
    from {{ ref('int_cell_content_scores') }}
    where is_flagged

),

day_scores as (

    select
        user_index,
        day_index,
        day_flows,
        expected_day_flows,
        day_surprise,
        {{ night_surprise('day_surprise', 'tail_start', 'tail_scale', 'tail_cells') }} as night_surprise
    from {{ ref('int_user_day_scores') }}
    where is_anomalous

),

-- every cell with flows, as the spike scores hold them
cells as (

    select
        hour_of_day,
        day_index,
        user_index,
        flows
    from {{ ref('int_cell_spike_scores') }}

),

days as (

    select day_index
    from {{ ref('int_pca_days') }}

),

users as (

    select user_index
    from {{ ref('int_pca_users') }}

),

tested as (

    select 24 * (select count(*) from days) * (select count(*) from users) as tested_cells

),

fitted as (

    {{ tail_fit_threshold('tails', '(select tested.tested_cells from tested)', spike_false_alarms()) }}

),

spike_cells as (

    select
        'residual_spike' as detector,
        tails.hour_of_day,
        tails.day_index,
        tails.user_index,
        tails.surprise,
        {{ night_surprise('tails.surprise', 'fitted.tail_start', 'fitted.tail_scale', 'fitted.tail_cells') }}
            as night_surprise
    from tails
    cross join fitted
    where tails.surprise > fitted.surprise_threshold

),

hour_totals as (

    select
        user_index,
        hour_of_day,
        sum(flows) as hour_flows
    from cells
    group by user_index, hour_of_day

),

hourly_flagged as (

    select
        hour_of_day,
        day_index,
        user_index
    from spike_cells
    union
    select
        hour_of_day,
        day_index,
        user_index
    from content

),

-- the flows of the hours the hourly detectors flagged, per (user, day)
explained as (

    select
        hourly_flagged.user_index,
        hourly_flagged.day_index,
        sum(cells.flows) as flagged_flows
    from hourly_flagged
    inner join cells
        on
            hourly_flagged.hour_of_day = cells.hour_of_day
            and hourly_flagged.day_index = cells.day_index
            and hourly_flagged.user_index = cells.user_index
    group by hourly_flagged.user_index, hourly_flagged.day_index

),

day_cells as (

    select
        'whole_day' as detector,
        cells.hour_of_day,
        cells.day_index,
        cells.user_index,
        day_scores.day_surprise as surprise,
        day_scores.night_surprise
    from day_scores
    inner join cells
        on
            day_scores.user_index = cells.user_index
            and day_scores.day_index = cells.day_index
    inner join hour_totals
        on
            cells.user_index = hour_totals.user_index
            and cells.hour_of_day = hour_totals.hour_of_day
    left join explained
        on
            day_scores.user_index = explained.user_index
            and day_scores.day_index = explained.day_index
    -- above the mean of the same hour on the other days of the window
    where
        cells.flows * greatest((select count(*) from days) - 1, 1) > hour_totals.hour_flows - cells.flows
        -- a day whose excess the hourly detectors' hours hold for the most part is theirs (a
        -- spike raises its day too): its other hours are not part of the incident
        and coalesce(explained.flagged_flows, 0) < 0.5 * (day_scores.day_flows - day_scores.expected_day_flows)

),

flagged as (

    select
        detector,
        hour_of_day,
        day_index,
        user_index,
        surprise,
        night_surprise
    from spike_cells
    union all
    select
        detector,
        hour_of_day,
        day_index,
        user_index,
        surprise,
        night_surprise
    from day_cells
    union all
    select
        detector,
        hour_of_day,
        day_index,
        user_index,
        surprise,
        night_surprise
    from content

)

select
    detector,
    hour_of_day,
    day_index,
    user_index,
    surprise,
    night_surprise
from flagged
