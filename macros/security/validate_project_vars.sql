{#- Every var that becomes SQL, an identifier or a path, checked at once before any work:
    first thing in stage_external_sources (the nightly's first step) and in on-run-start, so a
    bad value fails the command with a clear message before anything reaches the database
    (lake_root is checked by stage_external_sources, the one place that uses it).
    (pca_components_by_hour is checked here for its shape only: a bad setting for one hour
    fails that hour's node alone, and the other hours still run.) -#}
{% macro validate_project_vars() %}
    {%- if not execute -%}
        {{ return('') }}
    {%- endif -%}
    {%- do validated_schema_name(target.schema, 'the target schema (env TA_SCHEMA)') -%}
    {%- do lake_schema() -%}
    {%- if var('run_date', none) -%}
        {%- do validated_partition_date(var('run_date')) -%}
    {%- endif -%}
    {%- do validated_reload_dates() -%}
    {%- if var('lake_dates', none) is not none -%}
        {%- set given = var('lake_dates') -%}
        {%- for d in ([given] if given is string else given) -%}
            {%- do validated_partition_date(d) -%}
        {%- endfor -%}
    {%- endif -%}
    {%- do pca_window_days() -%}
    {%- do history_nights() -%}
    {%- do nightly_run_id() -%}
    {%- set by_hour = var('pca_components_by_hour', {}) -%}
    {%- if by_hour is not mapping -%}
        {{ exceptions.raise_compiler_error("pca_components_by_hour must map hours to settings, e.g. {\"7\": 5}, got: " ~ (by_hour | tojson)) }}
    {%- endif -%}
    {%- for key in by_hour if not modules.re.fullmatch('[0-9]{1,2}', key | string) or key | int > 23 -%}
        {{ exceptions.raise_compiler_error("pca_components_by_hour keys must be hours 0-23, got: " ~ (key | tojson)) }}
    {%- endfor -%}
    {%- if var('pca_components', none) is not none -%}
        {%- set value = var('pca_components') -%}
        {%- if not ((value is integer and value is not boolean and value >= 1) or (value is float and value > 0 and value <= 1)) -%}
            {{ exceptions.raise_compiler_error("pca_components must be an integer k >= 1 or a proportion in (0, 1], got: " ~ (value | tojson)) }}
        {%- endif -%}
    {%- endif -%}
    {%- set backend = var('pca_backend', 'auto') -%}
    {%- if backend not in ('auto', 'madlib', 'compat') -%}
        {{ exceptions.raise_compiler_error("pca_backend must be auto, madlib or compat, got: " ~ (backend | tojson)) }}
    {%- endif -%}
    {%- if var('engine', 'auto') not in ('auto', 'postgres', 'greenplum') -%}
        {{ exceptions.raise_compiler_error("var engine must be auto, postgres or greenplum, got: " ~ (var('engine') | tojson)) }}
    {%- endif -%}
    {%- do outlier_threshold() -%}
    {%- do spe_confidence() -%}
    {%- do spike_false_alarms() -%}
    {%- do day_false_alarms() -%}
    {%- do content_false_alarms() -%}
    {%- do component_selection('outlier_components', 3) -%}
    {%- do spe_component_selection() -%}
    {%- if var('gpfdist_url', none) is not none -%}
        {%- do greenplum_gpfdist_urls() -%}
    {%- endif -%}
    {%- if var('reporting_role', none) is not none -%}
        {%- do reporting_role() -%}
    {%- endif -%}
{% endmacro %}
