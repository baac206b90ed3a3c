{{ config(materialized='table') }}

{#- The SPE (Q statistic) control limit of each hour, Jackson & Mudholkar (1979):
      θm = Σ λ^m over the eigenvalues outside the normal subspace (m = 1, 2, 3)
      h0 = 1 − 2 θ1 θ3 / (3 θ2²)
      Q  = θ1 [c_α √(2 θ2 h0²) / θ1 + 1 + θ2 h0 (h0 − 1) / θ1²]^(1/h0)
    Those eigenvalues are not all in the PC table (the PCA keeps only k), but they are exactly
    the non-zero eigenvalues of R Rᵀ / (n − 1), R = the n days × users residual matrix: so
    θm = trace((R Rᵀ / (n − 1))^m), set-based sums over the n × n Gram matrix of the days,
    no eigen-decomposition. That Gram comes from the sparse counts, not from R (dense: days ×
    days × users products): with Xc the centred counts and T = Xc V the days' scores on the
    normal subspace V (orthonormal), R = Xc (I − V Vᵀ), so R Rᵀ = Xc Xcᵀ − T Tᵀ, and
    (Xc Xcᵀ)_ij = Σ_u x_iu x_ju − s_i − s_j + Σ_u μ_u², s_i = Σ_u x_iu μ_u: products of
    non-zero counts only. -#}

with

counts as (

    select
        hour_of_day,
        row_id as day_index,
        col_id as user_index,
        value
    from {{ ref('int_pca_input') }}

),

scores as (

    select
        hour_of_day,
        day_index,
        component_rank,
        score
    from {{ ref('int_pca_day_scores') }}

),

days as (

    select day_index
    from {{ ref('int_pca_days') }}

),

window_days as (

    select count(*) as day_count
    from {{ ref('int_pca_days') }}

),

components as (

    select distinct
        hour_of_day,
        component_rank,
        eigenvalue,
        proportion,
        cumulative_proportion
    from {{ ref('int_pca_component_loadings') }}

),

normal_subspace as (

    select
        hour_of_day,
        count(*) as kept_components,
        sum(case when {{ spe_component_selection() }} then 1 else 0 end) as normal_components,
        sum(case when {{ spe_component_selection() }} then eigenvalue else 0 end) as normal_variance
    from components
    group by hour_of_day

),

means as (

    -- μ_u: the PCA's column means (over the n days of the window)
    select
        counts.hour_of_day,
        counts.user_index,
        sum(counts.value) / window_days.day_count as column_mean
    from counts
    cross join window_days
    group by counts.hour_of_day, counts.user_index, window_days.day_count

),

mean_squares as (

    select
        hour_of_day,
        sum(column_mean * column_mean) as mean_square
    from means
    group by hour_of_day

),

mean_products as (

    -- s_i = Σ_u x_iu μ_u
    select
        counts.hour_of_day,
        counts.day_index,
        sum(counts.value * means.column_mean) as mean_product
    from counts
    inner join means
        on counts.hour_of_day = means.hour_of_day and counts.user_index = means.user_index
    group by counts.hour_of_day, counts.day_index

),

count_products as (

    -- Σ_u x_iu x_ju over the users active on both days
    select
        left_counts.hour_of_day,
        left_counts.day_index as day_i,
        right_counts.day_index as day_j,
        sum(left_counts.value * right_counts.value) as product
    from counts as left_counts
    inner join counts as right_counts
        on
            left_counts.hour_of_day = right_counts.hour_of_day
            and left_counts.user_index = right_counts.user_index
    group by left_counts.hour_of_day, left_counts.day_index, right_counts.day_index

),

day_pairs as (

    -- every (day_i, day_j) of the hours with a PCA, also when no user is active on both
    select
        normal_subspace.hour_of_day,
        days_i.day_index as day_i,
        days_j.day_index as day_j
    from normal_subspace
    cross join days as days_i
    cross join days as days_j

),

normal_score_products as (

    -- (T Tᵀ)_ij over the components of the normal subspace
    select
        scores_i.hour_of_day,
        scores_i.day_index as day_i,
        scores_j.day_index as day_j,
        sum(scores_i.score * scores_j.score) as product
    from scores as scores_i
    inner join scores as scores_j
        on
            scores_i.hour_of_day = scores_j.hour_of_day
            and scores_i.component_rank = scores_j.component_rank
    inner join components
        on
            scores_i.hour_of_day = components.hour_of_day
            and scores_i.component_rank = components.component_rank
    where {{ spe_component_selection('components') }}
    group by scores_i.hour_of_day, scores_i.day_index, scores_j.day_index

),

gram as (

    select
        day_pairs.hour_of_day,
        day_pairs.day_i,
        day_pairs.day_j,
        coalesce(count_products.product, 0)
        - coalesce(mean_i.mean_product, 0)
        - coalesce(mean_j.mean_product, 0)
        + coalesce(mean_squares.mean_square, 0)
        - coalesce(normal_score_products.product, 0) as product
    from day_pairs
    left join mean_squares on day_pairs.hour_of_day = mean_squares.hour_of_day
    left join count_products
        on
            day_pairs.hour_of_day = count_products.hour_of_day
            and day_pairs.day_i = count_products.day_i
            and day_pairs.day_j = count_products.day_j
    left join mean_products as mean_i
        on day_pairs.hour_of_day = mean_i.hour_of_day and day_pairs.day_i = mean_i.day_index
    left join mean_products as mean_j
        on day_pairs.hour_of_day = mean_j.hour_of_day and day_pairs.day_j = mean_j.day_index
    left join normal_score_products
        on
            day_pairs.hour_of_day = normal_score_products.hour_of_day
            and day_pairs.day_i = normal_score_products.day_i
            and day_pairs.day_j = normal_score_products.day_j

),

gram_traces as (

    select
        hour_of_day,
        sum(case when day_i = day_j then product else 0 end) as trace_1,
        sum(product * product) as trace_2
    from gram
    group by hour_of_day

),

gram_cubes as (

    -- trace(G³) = Σ_ijk G_ij G_jk G_ki
    select
        g_ij.hour_of_day,
        sum(g_ij.product * g_jk.product * g_ki.product) as trace_3
    from gram as g_ij
    inner join gram as g_jk
        on g_ij.hour_of_day = g_jk.hour_of_day and g_ij.day_j = g_jk.day_i
    inner join gram as g_ki
        on
            g_ij.hour_of_day = g_ki.hour_of_day
            and g_jk.day_j = g_ki.day_i
            and g_ij.day_i = g_ki.day_j
    group by g_ij.hour_of_day

),

thetas as (

    select
        normal_subspace.hour_of_day,
        window_days.day_count,
        normal_subspace.kept_components,
        normal_subspace.normal_components,
        normal_subspace.normal_variance,
        gram_traces.trace_1 / (window_days.day_count - 1) as theta_1,
        gram_traces.trace_2 / power(window_days.day_count - 1, 2) as theta_2,
        gram_cubes.trace_3 / power(window_days.day_count - 1, 3) as theta_3
    from normal_subspace
    cross join window_days
    inner join gram_traces on normal_subspace.hour_of_day = gram_traces.hour_of_day
    inner join gram_cubes on normal_subspace.hour_of_day = gram_cubes.hour_of_day

),

quantile as (

    select {{ normal_quantile(spe_confidence()) }} as c_alpha

),

shaped as (

    select
        hour_of_day,
        day_count,
        kept_components,
        normal_components,
        normal_variance,
        theta_1,
        theta_2,
        theta_3,
        -- variance left outside the normal subspace, beyond rounding noise
        coalesce(theta_1 > {{ spe_negligible_share() }} * (normal_variance + theta_1), false)
            as has_residual_variance,
        case
            when theta_1 > {{ spe_negligible_share() }} * (normal_variance + theta_1)
                then 1 - 2 * theta_1 * theta_3 / (3 * theta_2 * theta_2)
        end as h0
    from thetas

),

limits as (

    select
        shaped.hour_of_day,
        shaped.day_count,
        shaped.kept_components,
        shaped.normal_components,
        shaped.normal_variance,
        shaped.theta_1,
        shaped.theta_2,
        shaped.theta_3,
        shaped.h0,
        -- h0 <= 0 (one residual eigenvalue towering over many tiny ones) leaves the power
        -- transform undefined: its small positive floor is used instead
        greatest(shaped.h0, {{ spe_h0_floor() }}) as h0_used,
        quantile.c_alpha,
        shaped.has_residual_variance
    from shaped
    cross join quantile

),

thresholds as (

    select
        hour_of_day,
        day_count,
        kept_components,
        normal_components,
        normal_variance,
        theta_1,
        theta_2,
        theta_3,
        h0,
        c_alpha,
        case
            when has_residual_variance
                then theta_1 * power(
                    c_alpha * sqrt(2 * theta_2 * h0_used * h0_used) / theta_1
                    + 1
                    + theta_2 * h0_used * (h0_used - 1) / (theta_1 * theta_1),
                    1 / h0_used
                )
        end as spe_threshold
    from limits

)

select
    hour_of_day,
    day_count,
    kept_components,
    normal_components,
    normal_variance,
    theta_1,
    theta_2,
    theta_3,
    h0,
    c_alpha,
    spe_threshold
from thresholds
