{#- The (hour, day, user) cells that a detector flags, one row per detector and cell, with the
    detector's surprise −ln p: what fct_incidents groups into incidents.
    * `residual_spike`: the cells of int_cell_spike_tails above the night's threshold for var
      `spike_false_alarms` (the same fit as fct_user_spikes_history: macro tail_fit_threshold
      over 24 × days × users cells tested);
    * `whole_day`: the (user, day) pairs int_user_day_scores calls anomalous, at the hours of
      that day whose flows exceed the user's mean of that hour on the other days of the window
      (the hours that made the day; a dormant user's every active hour), with the day's surprise. -#}

with

tails as (

    select
        hour_of_day,
        day_index,
        user_index,
        spike_surprise as surprise
    from {{ ref('int_cell_spike_tails') }}

),

day_scores as (

    select
        user_index,
        day_index,
        day_surprise
    from {{ ref('int_user_day_scores') }}
    where is_anomalous

),

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
        tails.surprise
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

day_cells as (

    select
        'whole_day' as detector,
        cells.hour_of_day,
        cells.day_index,
        cells.user_index,
        day_scores.day_surprise as surprise
    from day_scores
    inner join cells
        on
            day_scores.user_index = cells.user_index
            and day_scores.day_index = cells.day_index
    inner join hour_totals
        on
            cells.user_index = hour_totals.user_index
            and cells.hour_of_day = hour_totals.hour_of_day
    -- above the mean of the same hour on the other days of the window
    where cells.flows * greatest((select count(*) from days) - 1, 1) > hour_totals.hour_flows - cells.flows

),

flagged as (

    select
        detector,
        hour_of_day,
        day_index,
        user_index,
        surprise
    from spike_cells
    union all
    select
        detector,
        hour_of_day,
        day_index,
        user_index,
        surprise
    from day_cells

)

select
    detector,
    hour_of_day,
    day_index,
    user_index,
    surprise
from flagged
