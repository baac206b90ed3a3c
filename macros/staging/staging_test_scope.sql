{#- The rows a data test looks at (dbt's `where` test config, see dbt's get_where_subquery).
    One value is the project's own: `where: latest_load` (set on the staging layer's tests in
    dbt_project.yml) keeps the rows of the latest staging load (the newest `loaded_at` of
    the staging shards; the staging views carry it too), i.e. those that the build running
    the test has just written (every staged row carries `loaded_at`, the start of the dbt
    invocation that wrote it; a load writes one value, in every shard). A full load tests all
    it loaded; a nightly run tests only the new day instead of rescanning every day staged
    before, which were tested when they were loaded. The newest `loaded_at` and its rows are found through
    the index on loaded_at. Var `staging_tests_scope: all` tests every row instead.
    `where: this_run` (the mart history tables' tests) keeps the rows of var `run_id`. Any other
    `where` is dbt's: a filter on the model's rows. -#}
{% macro default__get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where == 'latest_load' -%}
        {%- set scope = var('staging_tests_scope', 'latest_load') -%}
        {%- if scope not in ('latest_load', 'all') -%}
            {{ exceptions.raise_compiler_error("var staging_tests_scope must be latest_load or all, got: " ~ (scope | tojson)) }}
        {%- endif -%}
        {%- if scope == 'all' -%}
            {%- do return(relation) -%}
        {%- endif -%}
        {#- the newest loaded_at of the staged tables themselves, shard by shard (the views over
            them filter or union their rows, and a max taken through them would not come from
            the shards' indexes on loaded_at) -#}
        {%- set newest = [] -%}
        {%- set shard_prefix = 'base_lake__flow_lines_shard_' -%}
        {%- for shard in range(staging_shard_count()) -%}
            {%- set staged = api.Relation.create(database=relation.database, schema=relation.schema,
                                                 identifier=shard_prefix ~ shard) -%}
            {#- a shard's own test looks at its own newest load: the other shard may still be
                being built (a shard that loaded nothing new tests its previous load again) -#}
            {%- if not relation.identifier.startswith(shard_prefix) or relation.identifier == staged.identifier -%}
                {%- do newest.append("(select max(latest.loaded_at) from " ~ staged ~ " as latest)") -%}
            {%- endif -%}
        {%- endfor -%}
        {%- set where = "loaded_at = greatest(" ~ newest | join(", ") ~ ")" -%}
    {%- endif -%}
    {%- if where == 'this_run' -%}
        {#- the mart history tables' tests: the rows of the run being built (var run_id) -#}
        {%- set where = "run_id = " ~ sql_string_literal(nightly_run_id()) -%}
    {%- endif -%}
    {%- if where -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
