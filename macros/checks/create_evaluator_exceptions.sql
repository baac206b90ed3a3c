{#- When dbt Labs' dbt_project_evaluator is installed (a check, never a dependency of the project),
    it reads models/dbt_project_evaluator_exceptions.sql with run_query while its own models run;
    a check that builds only `package:dbt_project_evaluator` never builds that view, so this
    on-run-start hook creates it first from the model's own SQL. Nothing happens otherwise. -#}
{% macro create_evaluator_exceptions() %}
    {%- if execute -%}
        {%- set evaluator_nodes = graph.nodes.values() | selectattr('package_name', 'equalto', 'dbt_project_evaluator') | list -%}
        {%- set node = graph.nodes.get('model.' ~ project_name ~ '.dbt_project_evaluator_exceptions') -%}
        {%- if evaluator_nodes and node -%}
            {%- set relation = api.Relation.create(database=node.database, schema=node.schema, identifier=node.alias, type='view') -%}
            {%- do adapter.create_schema(relation) -%}
            {{ return('create or replace view ' ~ relation ~ ' as ' ~ node.raw_code) }}
        {%- endif -%}
    {%- endif -%}
    {{ return('') }}
{% endmacro %}
