{#- One night = one snapshot. Every row of a mart's history table carries the run that wrote it;
    dim_runs records the runs that were published; the marts readers use are views of the
    latest published run (see README, "Nights, snapshots and publishing"). -#}

{#- Var `run_id`: the attempt writing the history rows (the nightly run gives each attempt its
    own; a plain `dbt build` uses its invocation id). A plain token: it becomes a SQL literal. -#}
{% macro nightly_run_id() %}
    {%- set value = var('run_id', none) or invocation_id -%}
    {%- if value is not string or not modules.re.fullmatch('[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}', value) -%}
        {{ exceptions.raise_compiler_error("run_id must be 1-63 letters, digits, '_', '.', ':' or '-', got: " ~ (value | tojson)) }}
    {%- endif -%}
    {{ return(value) }}
{% endmacro %}


{#- The run's date: var `run_date`, else the last day of the PCA window it computed. -#}
{% macro nightly_run_date() %}
    {{ return(pca_window_end("(select max(window_days.activity_date) from " ~ ref('int_pca_days') ~ " as window_days)")) }}
{% endmacro %}


{#- The two columns every history row ends with. -#}
{% macro nightly_run_columns() %}
    {{ sql_string_literal(nightly_run_id()) }}::text as run_id,
    {{ nightly_run_date() }}::date as run_date
{%- endmacro %}


{#- Var `history_nights` (default 14): how many nights the history tables keep, the latest
    published run of each of the newest run dates. -#}
{% macro history_nights() %}
    {%- set value = var('history_nights', 14) -%}
    {%- if value is not integer or value is boolean or value < 1 -%}
        {{ exceptions.raise_compiler_error("history_nights must be an integer >= 1, got: " ~ (value | tojson)) }}
    {%- endif -%}
    {{ return(value | int) }}
{% endmacro %}


{#- Post-hook of dim_runs, in the transaction that publishes the run: keep the latest run of
    each run date, for the newest `history_nights` dates, and drop every other run's rows from
    the history tables (older nights, superseded reruns, attempts that never got published). -#}
{% macro prune_nightly_history() %}
    {%- if not execute -%}
        {{ return('') }}
    {%- endif -%}
    delete from {{ this }}
    where run_id not in (
        select kept.run_id
        from (
            select
                run_id,
                published_at,
                row_number() over (partition by run_date order by published_at desc, run_id desc) as rerun_rank
            from {{ this }}
        ) as kept
        where kept.rerun_rank = 1
        order by kept.published_at desc, kept.run_id desc
        limit {{ history_nights() }}
    );
    {%- for name in nightly_history_models() %}
    delete from {{ ref(name) }} where run_id not in (select published.run_id from {{ this }} as published);
    {%- endfor %}
{%- endmacro %}


{#- Pre-hook of dim_runs: a run is published only when the history tables that every night
    fills hold rows of it. A selection that builds dim_runs without them (`dbt run --select
    tag:pca_hour+` leaves dim_days_history out) would otherwise publish a night whose marts
    are empty. (Outliers, day anomalies and spikes may legitimately be empty on a quiet night.) -#}
{% macro refuse_incomplete_run() %}
    {%- if not execute -%}
        {{ return('') }}
    {%- endif -%}
    {%- set run_id = sql_string_literal(nightly_run_id()) -%}
    do $$
    begin
    {%- for name in ['dim_days_history', 'dim_users_history', 'fct_pca_components_history', 'fct_pca_summary_history'] %}
        if not exists (select 1 from {{ ref(name) }} where run_id = {{ run_id }}) then
            raise exception 'run % is not published: {{ name }} holds none of its rows (build every history table of the run before dim_runs)', {{ run_id }};
        end if;
    {%- endfor %}
    end
    $$
{%- endmacro %}


{#- The history tables, one per mart (dim_runs depends on each: see its depends_on lines). -#}
{% macro nightly_history_models() %}
    {{ return([
        'dim_days_history', 'dim_users_history', 'fct_pca_components_history', 'fct_pca_summary_history',
        'fct_user_outliers_history', 'fct_day_anomalies_history', 'fct_user_spikes_history',
        'fct_incidents_history',
    ]) }}
{% endmacro %}


{#- The run the marts show: the latest published one. -#}
{% macro latest_published_run() %}
    select runs.run_id
    from {{ ref('dim_runs') }} as runs
    order by runs.published_at desc, runs.run_id desc
    limit 1
{%- endmacro %}
