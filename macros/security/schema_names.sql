{#- The target schema (env TA_SCHEMA) names every relation, the lake schema beside it and the
    nightly run's lock and artifact directory: only a plain lowercase identifier is accepted,
    short enough for `<schema>_lake` to fit PostgreSQL's 63 bytes. Checked while dbt parses,
    so a bad value fails every command before anything reaches the database. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set schema = validated_schema_name(target.schema, 'the target schema (env TA_SCHEMA)') -%}
    {%- if custom_schema_name is none -%}
        {{ schema }}
    {%- else -%}
        {{ schema }}_{{ validated_schema_name(custom_schema_name | trim, 'a custom schema') }}
    {%- endif -%}
{%- endmacro %}


{% macro validated_schema_name(name, what='schema') %}
    {%- if name is not string or not modules.re.fullmatch('[a-z_][a-z0-9_]{0,57}', name) -%}
        {{ exceptions.raise_compiler_error(what ~ " must be a plain lowercase identifier (a-z, 0-9 and _, not starting with a digit, at most 58 characters), got: " ~ (name | tojson)) }}
    {%- endif -%}
    {{ return(name) }}
{% endmacro %}
