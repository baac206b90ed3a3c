{#- Validated settings of the anomaly marts: each becomes SQL, so each is checked here first. -#}

{#- Var `outlier_threshold` (default 0.1, the published value): a user is an outlier of an hour
    when the absolute value of one of its loadings exceeds it. Loadings are entries of unit
    vectors, so the threshold lies in (0, 1). -#}
{% macro outlier_threshold() %}
    {%- set value = var('outlier_threshold', 0.1) -%}
    {%- if value is not number or value is boolean or value <= 0 or value >= 1 -%}
        {{ exceptions.raise_compiler_error("outlier_threshold must be a number in (0, 1), got: " ~ (value | tojson)) }}
    {%- endif -%}
    {{ return(value | float) }}
{% endmacro %}


{#- Var `spe_confidence` (default 0.999): the confidence level of the SPE (Q statistic) limit. -#}
{% macro spe_confidence() %}
    {%- set value = var('spe_confidence', 0.999) -%}
    {%- if value is not number or value is boolean or value <= 0.5 or value >= 1 -%}
        {{ exceptions.raise_compiler_error("spe_confidence must be a number in (0.5, 1), got: " ~ (value | tojson)) }}
    {%- endif -%}
    {{ return(value | float) }}
{% endmacro %}


{#- Which of an hour's kept components a setting selects, as a SQL predicate over the
    columns of fct_pca_components. The setting is an integer k >= 1 (the k leading
    components) or a proportion x in (0, 1] (the smallest number of leading components whose
    cumulative share of the hour's variance reaches x; 1 = every kept component). Never more
    than the PCA kept. -#}
{% macro component_selection(var_name, default, rank_column='component_rank', cumulative_column='cumulative_proportion', proportion_column='proportion') %}
    {%- set value = var(var_name, default) -%}
    {%- if value is integer and value is not boolean and value >= 1 -%}
        {{ return(rank_column ~ ' <= ' ~ (value | int)) }}
    {%- elif value is float and value > 0 and value <= 1 -%}
        {#- the component is needed while the share before it is still short of x -#}
        {{ return('(' ~ cumulative_column ~ ' - ' ~ proportion_column ~ ') < ' ~ (value | float)) }}
    {%- endif -%}
    {{ exceptions.raise_compiler_error(var_name ~ " must be an integer k >= 1 or a proportion in (0, 1], got: " ~ (value | tojson)) }}
{% endmacro %}


{#- The SPE's normal subspace: var `spe_components`, an integer k or a proportion of the hour's
    variance as for component_selection. The default, the integer 1, is the leading component
    alone; the proportion 1.0 (or an integer at least the number of components the PCA kept)
    is every kept component, i.e. the residual tables as pca_sparse_project wrote them.
    `relation`: qualifies the component columns when several relations have them. -#}
{% macro spe_component_selection(relation=none) %}
    {%- set prefix = relation ~ '.' if relation else '' -%}
    {{ return(component_selection('spe_components', 1, rank_column=prefix ~ 'component_rank',
                                  cumulative_column=prefix ~ 'cumulative_proportion',
                                  proportion_column=prefix ~ 'proportion')) }}
{% endmacro %}


{#- Variance outside the normal subspace below this share of the hour's variance is rounding
    noise: the hour then has no SPE limit (and no anomalous day). -#}
{% macro spe_negligible_share() %}
    {{ return('1e-12') }}
{% endmacro %}


{#- Floor of h0 in the Jackson–Mudholkar limit (h0 <= 0 leaves the transform undefined). -#}
{% macro spe_h0_floor() %}
    {{ return('0.001') }}
{% endmacro %}


{#- How many users each day's SPE is attributed to (the largest squared residuals). -#}
{% macro spe_top_users() %}
    {{ return(5) }}
{% endmacro %}


{#- Var `spike_false_alarms` (default 0.25): the false cells fct_user_spikes may flag per night
    on normal traffic; the threshold on the cells' surprise is fitted to deliver it
    (tail_fit_threshold). -#}
{% macro spike_false_alarms() %}
    {%- set value = var('spike_false_alarms', 0.25) -%}
    {%- if value is not number or value is boolean or value <= 0 or value >= 1 -%}
        {{ exceptions.raise_compiler_error("spike_false_alarms must be a number in (0, 1), got: " ~ (value | tojson)) }}
    {%- endif -%}
    {{ return(value | float) }}
{% endmacro %}


{#- Var `day_false_alarms` (default 0.1): the false (user, hour) pairs per night that
    int_user_day_scores' anomalous normal days may bring (each counts as its excess hours); its
    threshold is fitted to deliver it (tail_fit_threshold). -#}
{% macro day_false_alarms() %}
    {%- set value = var('day_false_alarms', 0.1) -%}
    {%- if value is not number or value is boolean or value <= 0 or value >= 1 -%}
        {{ exceptions.raise_compiler_error("day_false_alarms must be a number in (0, 1), got: " ~ (value | tojson)) }}
    {%- endif -%}
    {{ return(value | float) }}
{% endmacro %}


{#- Var `content_false_alarms` (default 0.1): the normal (hour, day, user) cells the content
    features (int_cell_content_scores) may flag per night; its threshold is fitted to deliver
    it (tail_fit_threshold). -#}
{% macro content_false_alarms() %}
    {%- set value = var('content_false_alarms', 0.1) -%}
    {%- if value is not number or value is boolean or value <= 0 or value >= 1 -%}
        {{ exceptions.raise_compiler_error("content_false_alarms must be a number in (0, 1), got: " ~ (value | tojson)) }}
    {%- endif -%}
    {{ return(value | float) }}
{% endmacro %}
