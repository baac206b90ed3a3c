{#- The lake root reaches a shell (file_fdw's `program`) and DDL: accept only a plain
    absolute path, so no quoting trick or traversal can get through. -#}
{% macro validated_lake_root(lake_root=none) %}
    {%- set root = (lake_root if lake_root is not none else var('lake_root')) | string -%}
    {%- set root = root.rstrip('/') if root != '/' else root -%}
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


{#- Partition values come from directory names (dt=YYYY-MM-DD); anything else is refused. -#}
{% macro validated_partition_date(value) %}
    {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', value | string) -%}
        {{ exceptions.raise_compiler_error("not a partition date (YYYY-MM-DD): " ~ (value | tojson)) }}
    {%- endif -%}
    {{ return(value | string) }}
{% endmacro %}


{#- The schema holding the external tables: beside the target schema, so that two targets
    (or two test runs) on one database never share them. -#}
{% macro lake_schema() %}
    {{- return(var('lake_schema', target.schema ~ '_lake')) -}}
{% endmacro %}
