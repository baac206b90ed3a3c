{#- Table DDL per engine. dbt-postgres builds every table (and incremental model) with
    `postgres__create_table_as`; this project's macro of that name takes precedence. On
    PostgreSQL it is dbt-postgres' own; on Greenplum the same statement gets the model's
    distribution clause appended (keys `distributed_by`, `distributed_randomly`,
    `distributed_replicated` of the model's `meta` config, where dbt wants a project's own
    configs; see dbt_project.yml for the project's choices). -#}
{% macro postgres__create_table_as(temporary, relation, sql) -%}
    {%- set greenplum = greenplum_override('create_table_as') -%}
    {%- if greenplum -%}
        {{ return(greenplum(temporary, relation, sql)) }}
    {%- endif -%}
    {{ return(dbt.postgres__create_table_as(temporary, relation, sql)) }}
{%- endmacro %}


{#- Greenplum: dbt-postgres' statement with the distribution clause after the query (or after
    the column list when the model's contract is enforced). -#}
{% macro greenplum__create_table_as(temporary, relation, sql) -%}
    {{ return(greenplum_create_table_as_ddl(temporary, relation, sql, config)) }}
{%- endmacro %}


{% macro greenplum_create_table_as_ddl(temporary, relation, sql, model_config) -%}
    {%- set unlogged = model_config.get('unlogged', false) -%}
    {%- set sql_header = model_config.get('sql_header', none) -%}
    {%- set distribution = greenplum_distribution_clause(model_config) -%}
    {%- set contract_config = model_config.get('contract') -%}
    {%- set enforced = contract_config.enforced if contract_config is not none and contract_config is not mapping
        else (contract_config or {}).get('enforced', false) -%}
    {%- set ddl -%}
    {{ sql_header if sql_header is not none }}
    create {% if temporary -%}
        temporary
    {%- elif unlogged -%}
        unlogged
    {%- endif %} table {{ relation }}
    {% if enforced -%}
        {{ get_assert_columns_equivalent(sql) }}
    {%- endif %}
    {% if enforced and (not temporary) -%}
        {{ get_table_columns_and_constraints() }}
        {{ distribution }};
    insert into {{ relation }} (
        {{ adapter.dispatch('get_column_names', 'dbt')() }}
    )
        {%- set sql = get_select_subquery(sql) %}
    (
        {{ sql }}
    );
    {%- else %}
    as (
        {{ sql }}
    )
    {{ distribution }};
    {%- endif %}
    {%- endset -%}
    {{ return(ddl) }}
{%- endmacro %}


{#- `distributed by (a, b)` | `distributed randomly` | `distributed replicated` | '' (the
    engine's default: the first suitable column) from a model's config (under `meta`). At most one of the
    three settings; column names must be plain identifiers. -#}
{% macro greenplum_distribution_clause(model_config) -%}
    {%- set meta = model_config.get('meta', none) or {} -%}
    {%- set by = meta.get('distributed_by', none) -%}
    {%- set randomly = meta.get('distributed_randomly', false) -%}
    {%- set replicated = meta.get('distributed_replicated', false) -%}
    {%- set chosen = [by is not none and by != [] and by != '', randomly is true, replicated is true] | select | list -%}
    {%- if chosen | length > 1 -%}
        {{ exceptions.raise_compiler_error("choose one of distributed_by, distributed_randomly, distributed_replicated, got: "
            ~ ({'distributed_by': by, 'distributed_randomly': randomly, 'distributed_replicated': replicated} | tojson)) }}
    {%- endif -%}
    {%- if randomly is true -%}
        {{ return('distributed randomly') }}
    {%- elif replicated is true -%}
        {{ return('distributed replicated') }}
    {%- elif by is not none and by != [] and by != '' -%}
        {%- set columns = [by] if by is string else by -%}
        {%- set quoted = [] -%}
        {%- for column in columns -%}
            {%- if column is not string or not modules.re.fullmatch('[a-z_][a-z0-9_]*', column) -%}
                {{ exceptions.raise_compiler_error("distributed_by takes lowercase column names, got: " ~ (column | tojson)) }}
            {%- endif -%}
            {%- do quoted.append(adapter.quote(column)) -%}
        {%- endfor -%}
        {{ return('distributed by (' ~ quoted | join(', ') ~ ')') }}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}


{#- `dbt run-operation greenplum_table_ddl_preview --vars '{engine: greenplum}'`: log the
    Greenplum table DDL of every table and incremental model (the query itself elided), to
    review the distribution clauses without a Greenplum at hand. Reads no data. -#}
{% macro greenplum_table_ddl_preview() %}
    {%- for node in graph.nodes.values() | sort(attribute='unique_id')
        if node.resource_type == 'model' and node.package_name == project_name
        and node.config.materialized in ('table', 'incremental') -%}
        {%- set relation = api.Relation.create(database=node.database, schema=node.schema, identifier=node.alias) -%}
        {%- set ddl = greenplum_create_table_as_ddl(false, relation, 'select ... /* ' ~ node.name ~ ' */', node.config) -%}
        {{ log("-- greenplum ddl of " ~ node.unique_id ~ "\n" ~ ddl | trim, info=true) }}
    {%- endfor -%}
{% endmacro %}
