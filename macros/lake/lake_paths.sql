{#- The lake root reaches a shell (file_fdw's `program`) and DDL: accept only a plain
    absolute path, so no quoting trick or traversal can get through. -#}
{% macro validated_lake_root(lake_root=none) %}
    {%- set root = (lake_root if lake_root is not none else var('lake_root')) | string -%}
    {%- set root = root.rstrip('/') if root != '/' else root -%}
    {%- if root in ('', 'None') -%}
        {{ exceptions.raise_compiler_error(
            "lake_root is not set: pass var lake_root (the absolute path of the lake) or set env TA_LAKE_ROOT") }}
    {%- endif -%}
    {%- if not modules.re.fullmatch('/[A-Za-z0-9_./@+-]*', root) -%}
        {{ exceptions.raise_compiler_error(
            "lake_root must be an absolute path of letters, digits and _ . / @ + - only, got: "
            ~ (root | tojson)) }}
    {%- endif -%}
    {%- if '/../' in (root ~ '/') or '/./' in (root ~ '/') -%}
        {{ exceptions.raise_compiler_error(
            "lake_root must not contain . or .. components, got: " ~ (root | tojson)) }}
    {%- endif -%}
    {{ return(root) }}
{% endmacro %}


{#- Partition values come from directory names (dt=YYYY-MM-DD) and vars (run_date,
    reload_dates, lake_dates); anything but a real calendar date is refused. -#}
{% macro validated_partition_date(value) %}
    {%- set text = value | string -%}
    {%- set valid = modules.re.fullmatch('[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])', text) -%}
    {%- if valid -%}
        {%- set year, month = text[:4] | int, text[5:7] | int -%}
        {%- set next_month = modules.datetime.date(year + month // 12, month % 12 + 1, 1) if year < 9999 or month < 12 else none -%}
        {%- set valid = next_month is none or text[8:] | int <= (next_month - modules.datetime.timedelta(days=1)).day -%}
    {%- endif -%}
    {%- if not valid -%}
        {{ exceptions.raise_compiler_error("not a date (YYYY-MM-DD): " ~ (value | tojson)) }}
    {%- endif -%}
    {{ return(text) }}
{% endmacro %}


{#- Var `reload_dates`: one date or a list of dates, each validated. -#}
{% macro validated_reload_dates() %}
    {%- set given = var('reload_dates', []) -%}
    {%- set given = [given] if given is string else given -%}
    {%- if given is mapping or given is not iterable -%}
        {{ exceptions.raise_compiler_error("reload_dates must be a date YYYY-MM-DD or a list of them, got: " ~ (given | tojson)) }}
    {%- endif -%}
    {%- set dates = [] -%}
    {%- for d in given -%}
        {%- do dates.append(validated_partition_date(d)) -%}
    {%- endfor -%}
    {{ return(dates) }}
{% endmacro %}


{#- The schema holding the external tables: beside the target schema, so that two targets
    (or two test runs) on one database never share them. -#}
{% macro lake_schema() %}
    {%- set given = var('lake_schema', none) -%}
    {{- return(validated_schema_name(target.schema ~ '_lake' if given is none else given, 'var lake_schema')) -}}
{% endmacro %}
