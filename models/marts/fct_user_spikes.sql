{#- fct_user_spikes of the latest published night: the rows of fct_user_spikes_history written by the run
    that dim_runs published last. -#}

with

history as (

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
        method,
        tested_expected_flows,
        tail_probability,
        spike_surprise,
        surprise_threshold,
        surprise_tail_scale,
        run_id,
        run_date
    from {{ ref('fct_user_spikes_history') }}

),

published as (

    {{ latest_published_run() }}

)

select
    history.hour_of_day,
    history.activity_date,
    history.day_index,
    history.user_name,
    history.user_index,
    history.flows,
    history.expected_flows,
    history.user_dispersion,
    history.spike_score,
    history.spike_threshold,
    history.tested_cells,
    history.rank_in_hour,
    history.method,
    history.tested_expected_flows,
    history.tail_probability,
    history.spike_surprise,
    history.surprise_threshold,
    history.surprise_tail_scale,
    history.run_id,
    history.run_date
from history
inner join published on history.run_id = published.run_id
