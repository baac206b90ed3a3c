{#- Users driving an hour's variance: one row per (method, hour of day, user) whose loading on
    a principal component of that hour passes var `outlier_threshold` (default 0.1).
      published          the method as first published: any kept component, positive
                         loadings only, score = the largest positive loading
      absolute_loading   ours: the leading components selected by var `outlier_components`
                         (default 3), either sign (a component's sign is arbitrary), score =
                         the largest absolute loading
    Each row keeps the component giving the score (ties: the lower component rank) and the
    user's rank within the hour and method (ties: user name). -#}

with

components as (

    select
        hour_of_day,
        component_rank,
        proportion,
        cumulative_proportion,
        principal_components
    from {{ ref('int_pca_components') }}

),

users as (

    select
        user_index,
        user_name
    from {{ ref('int_pca_users') }}

),

loadings as (

    select
        components.hour_of_day,
        components.component_rank,
        components.proportion,
        components.cumulative_proportion,
        entries.user_index::int as user_index,
        entries.loading
    from components
    cross join unnest(components.principal_components) with ordinality as entries (loading, user_index)

),

candidates as (

    select
        'published' as method,
        hour_of_day,
        user_index,
        component_rank,
        loading,
        loading as outlier_score
    from loadings
    where loading > {{ outlier_threshold() }}

    union all

    select
        'absolute_loading' as method,
        hour_of_day,
        user_index,
        component_rank,
        loading,
        abs(loading) as outlier_score
    from loadings
    where
        abs(loading) > {{ outlier_threshold() }}
        and {{ component_selection('outlier_components', 3) }}

),

best_component as (

    select
        method,
        hour_of_day,
        user_index,
        component_rank,
        loading,
        outlier_score,
        row_number() over (
            partition by method, hour_of_day, user_index
            order by outlier_score desc, component_rank asc
        ) as component_choice
    from candidates

),

ranked as (

    select
        best_component.method,
        best_component.hour_of_day,
        users.user_name,
        best_component.user_index,
        best_component.component_rank,
        best_component.loading,
        best_component.outlier_score,
        row_number() over (
            partition by best_component.method, best_component.hour_of_day
            order by best_component.outlier_score desc, best_component.component_rank asc, users.user_name asc
        ) as rank_in_hour
    from best_component
    inner join users on best_component.user_index = users.user_index
    where best_component.component_choice = 1

)

select
    hour_of_day,
    user_name,
    user_index,
    component_rank,
    loading,
    outlier_score,
    rank_in_hour,
    method,
    {{ nightly_run_columns() }}
from ranked
