{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='run_id',
    pre_hook=['{{ refuse_incomplete_run() }}'],
    post_hook=['{{ prune_nightly_history() }}'],
) }}

{#- The published runs, one row each. Built after every history table of the run and their
    tests: inserting the run's row is publishing it, one statement in one transaction, and the
    marts (views of the latest published run) switch to the new night all at once. The
    post-hook prunes the history in the same transaction (var `history_nights`). -#}
-- depends_on: {{ ref('dim_days_history') }}, {{ ref('dim_users_history') }}
-- depends_on: {{ ref('fct_pca_components_history') }}, {{ ref('fct_pca_summary_history') }}
-- depends_on: {{ ref('fct_user_outliers_history') }}, {{ ref('fct_day_anomalies_history') }}
-- depends_on: {{ ref('fct_user_spikes_history') }}, {{ ref('fct_incidents_history') }}

with

days as (

    select activity_date
    from {{ ref('int_pca_days') }}

),

users as (

    select user_index
    from {{ ref('int_pca_users') }}

),

run_window as (

    select
        min(days.activity_date) as window_start,
        max(days.activity_date) as window_end,
        count(*) as days_in_window,
        (select count(*) from users) as users_in_window
    from days

)

select
    {{ sql_string_literal(nightly_run_id()) }}::text as run_id,
    {{ nightly_run_date() }}::date as run_date,
    window_start,
    window_end,
    days_in_window,
    users_in_window,
    {{ sql_string_literal(invocation_id) }}::text as dbt_invocation_id,
    now() as published_at
from run_window
