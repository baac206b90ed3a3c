{#- Validated PCA settings: each becomes SQL, so each is checked here first. -#}

{% macro pca_window_days() %}
    {%- set days = var('pca_window_days', 28) -%}
    {%- if days is not number or days != days | int or days < 2 -%}
        {{ exceptions.raise_compiler_error("pca_window_days must be an integer >= 2, got: " ~ (days | tojson)) }}
    {%- endif -%}
    {{ return(days | int) }}
{% endmacro %}


{#- The last day of the PCA window: var `run_date` when given, else `fallback_expr`. -#}
{% macro pca_window_end(fallback_expr) %}
    {%- set run_date = var('run_date', none) -%}
    {%- if run_date -%}
        {{ return(sql_string_literal(validated_partition_date(run_date)) ~ "::date") }}
    {%- endif -%}
    {{ return(fallback_expr) }}
{% endmacro %}


{#- MADlib's components_param for one hour: an integer k >= 1, or a proportion of variance in
    (0, 1]. Var `pca_components` (default 0.99), overridden per hour by var
    `pca_components_by_hour` ({"7": 5}). Returned as a SQL literal typed for MADlib's overloads. -#}
{% macro pca_components_param(hour) %}
    {%- set by_hour = var('pca_components_by_hour', {}) -%}
    {%- if by_hour is not mapping -%}
        {{ exceptions.raise_compiler_error("pca_components_by_hour must map hours to settings, e.g. {\"7\": 5}, got: " ~ (by_hour | tojson)) }}
    {%- endif -%}
    {%- for key in by_hour -%}
        {%- if not modules.re.fullmatch('[0-9]{1,2}', key | string) or key | int > 23 -%}
            {{ exceptions.raise_compiler_error("pca_components_by_hour keys must be hours 0-23, got: " ~ (key | tojson)) }}
        {%- endif -%}
    {%- endfor -%}
    {%- set value = by_hour.get(hour | string, by_hour.get(hour, var('pca_components', 0.99))) -%}
    {%- if value is integer and value is not boolean and value >= 1 -%}
        {{ return((value | int) ~ "::integer") }}
    {%- elif value is float and value > 0 and value <= 1 -%}
        {{ return((value | float) ~ "::double precision") }}
    {%- endif -%}
    {{ exceptions.raise_compiler_error("pca_components for hour " ~ hour ~ " must be an integer k >= 1 or a proportion in (0, 1], got: " ~ (value | tojson)) }}
{% endmacro %}


{% macro validated_hour(hour) %}
    {%- if hour is not integer or hour is boolean or hour < 0 or hour > 23 -%}
        {{ exceptions.raise_compiler_error("hour must be an integer 0-23, got: " ~ (hour | tojson)) }}
    {%- endif -%}
    {{ return(hour | int) }}
{% endmacro %}
