{#- `dbt run-operation stage_external_sources`: (re)create the external tables that expose the
    lake to the database, from the `external` properties of the `lake` sources. Idempotent and
    cheap (no data is read): run it before each build so new partitions are seen. -#}
{% macro stage_external_sources(lake_root=none) %}
    {%- do validate_project_vars() -%}
    {%- set root = validated_lake_root(lake_root) -%}
    {%- set sources = [] -%}
    {%- for node in graph.sources.values() if node.source_name == 'lake' and node.external -%}
        {%- do sources.append(node) -%}
    {%- endfor -%}
    {%- if not sources -%}
        {{ exceptions.raise_compiler_error("no lake source with `external` properties found") }}
    {%- endif -%}
    {%- set implementation = greenplum_override('stage_external_sources')
        or adapter.dispatch('stage_external_sources', 'traffic_anomalies') -%}
    {%- do implementation(root, sources | sort(attribute='name')) -%}
{% endmacro %}


{% macro sql_string_literal(value) %}
    {{- return("'" ~ (value | string | replace("'", "''")) ~ "'") -}}
{% endmacro %}


{% macro external_column_list(source_node) %}
    {%- set columns = [] -%}
    {%- for column in source_node.columns.values() -%}
        {%- do columns.append(adapter.quote(column.name) ~ ' ' ~ column.data_type) -%}
    {%- endfor -%}
    {{ return(columns | join(', ')) }}
{% endmacro %}


{% macro lake_reader_program(source_node, dataset_dir, dt=none) %}
    {%- set reader = source_node.external.reader -%}
    {%- if reader == 'lines' -%}
        {{ return(lake_partition_program(dataset_dir ~ '/dt=' ~ dt, dt)) }}
    {%- elif reader == 'listing' -%}
        {{ return(lake_listing_program(dataset_dir)) }}
    {%- elif reader == 'line_counts' -%}
        {{ return(lake_line_count_program(dataset_dir ~ '/dt=' ~ dt, dt)) }}
    {%- endif -%}
    {{ exceptions.raise_compiler_error("unknown lake reader " ~ (reader | tojson) ~ " for source " ~ source_node.name) }}
{% endmacro %}


{#- PostgreSQL: file_fdw foreign tables running the reader programs. Line-reading sources are
    partitioned tables with one foreign partition per dt=… directory, so a model that filters
    on literal dt values reads only those directories. -#}
{% macro postgres__stage_external_sources(root, sources) %}
    {%- set schema = lake_schema() -%}
    {#- the lake's days first, into a temporary table (this session's only): a lake without
        partitions is refused before any DDL, so the staged partitions stay as they are -#}
    {%- set dates = postgres_lake_dates(root, sources) -%}
    {%- do check_lake_dates(root, dates) -%}
    {%- set ddl = [
        "create extension if not exists file_fdw",
        "do $$ begin if not exists (select 1 from pg_foreign_server where srvname = 'traffic_anomalies_lake') "
            ~ "then create server traffic_anomalies_lake foreign data wrapper file_fdw; end if; end $$",
        "do $$ begin if not exists (select 1 from pg_namespace where nspname = " ~ sql_string_literal(schema)
            ~ ") then create schema " ~ adapter.quote(schema) ~ "; end if; end $$",
    ] -%}
    {%- set partitioned = [] -%}
    {%- for node in sources -%}
        {%- set relation = adapter.quote(schema) ~ '.' ~ adapter.quote(node.identifier) -%}
        {%- set dataset_dir = root ~ '/' ~ node.external.location -%}
        {%- do ddl.append(drop_lake_relation_sql(schema, node.identifier)) -%}
        {%- if node.external.partition_by -%}
            {%- do ddl.append("create table " ~ relation ~ " (" ~ external_column_list(node)
                ~ ") partition by list (" ~ adapter.quote(node.external.partition_by) ~ ")") -%}
            {%- do partitioned.append(node) -%}
        {%- else -%}
            {%- do ddl.append("create foreign table " ~ relation ~ " (" ~ external_column_list(node)
                ~ ") server traffic_anomalies_lake options (program "
                ~ sql_string_literal(lake_reader_program(node, dataset_dir)) ~ ", format 'text', encoding 'LATIN1')") -%}
        {%- endif -%}
    {%- endfor -%}
    {%- do run_query(ddl | join(";\n")) -%}
    {%- set parts = [] -%}
    {%- for node in partitioned -%}
        {%- set dataset_dir = root ~ '/' ~ node.external.location -%}
        {%- for dt in dates -%}
            {%- set partition = adapter.quote(schema) ~ '.' ~ adapter.quote(node.identifier ~ '__' ~ dt | replace('-', '')) -%}
            {%- do parts.append("create foreign table " ~ partition ~ " partition of "
                ~ adapter.quote(schema) ~ '.' ~ adapter.quote(node.identifier)
                ~ " for values in (" ~ sql_string_literal(validated_partition_date(dt)) ~ ") server traffic_anomalies_lake options (program "
                ~ sql_string_literal(lake_reader_program(node, dataset_dir, dt)) ~ ", format 'text', encoding 'LATIN1')") -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- if parts -%}
        {%- do run_query(parts | join(";\n")) -%}
    {%- endif -%}
    {%- do run_query("commit") -%}
    {{ log("staged " ~ sources | length ~ " lake sources in schema " ~ schema ~ " over " ~ root ~ ": "
        ~ dates | length ~ " partitions", info=true) }}
{% endmacro %}


{#- Drops a lake relation whatever it is now (a partitioned table or a foreign table: DROP TABLE
    and DROP FOREIGN TABLE each refuse the other kind). -#}
{% macro drop_lake_relation_sql(schema, identifier) %}
    {%- set sql -%}
do $$
declare
    kind "char";
begin
    select c.relkind into kind
    from pg_class as c
    inner join pg_namespace as n on c.relnamespace = n.oid
    where n.nspname = {{ sql_string_literal(schema) }} and c.relname = {{ sql_string_literal(identifier) }};
    if kind = 'f' then
        execute format('drop foreign table %I.%I cascade', {{ sql_string_literal(schema) }}, {{ sql_string_literal(identifier) }});
    elsif kind in ('r', 'p') then
        execute format('drop table %I.%I cascade', {{ sql_string_literal(schema) }}, {{ sql_string_literal(identifier) }});
    end if;
end
$$
    {%- endset -%}
    {{ return(sql) }}
{% endmacro %}


{#- The days of the lake at `root`, as its listing source (reader `listing`) gives them, read
    with COPY FROM PROGRAM into a temporary table: nothing persistent is touched. -#}
{% macro postgres_lake_dates(root, sources) %}
    {%- set listings = sources | selectattr('external.reader', 'equalto', 'listing') | list -%}
    {%- if listings | length != 1 -%}
        {{ exceptions.raise_compiler_error("expected one lake source with reader `listing`, found " ~ listings | length) }}
    {%- endif -%}
    {%- set node = listings[0] -%}
    {%- set probe -%}
create temporary table if not exists ta_lake_listing ({{ external_column_list(node) }});
truncate ta_lake_listing;
copy ta_lake_listing from program {{ sql_string_literal(lake_reader_program(node, root ~ '/' ~ node.external.location)) }} with (format 'text', encoding 'LATIN1')
    {%- endset -%}
    {%- do run_query(probe) -%}
    {{ return(run_query("select distinct dt::text from ta_lake_listing order by 1").columns[0].values() | list) }}
{% endmacro %}


{#- A lake without partitions (a wrong path, an empty directory) or a run date outside its
    days has nothing to load for this run: staging it would drop the staged partitions and
    leave the marts to be rebuilt from nothing. The command line checks the same first
    (traffic_anomalies.validation.check_lake); this is the check for dbt used directly, and
    for a lake the command line cannot see (another machine's). -#}
{% macro check_lake_dates(root, dates) %}
    {%- set run_date = var('run_date', none) -%}
    {%- set outside = run_date and dates | length > 0 and (validated_partition_date(run_date) < dates[0] or validated_partition_date(run_date) > dates[-1]) -%}
    {%- if dates | length == 0 -%}
        {{ exceptions.raise_compiler_error("lake " ~ root ~ " has no partitions: no flows/dt=YYYY-MM-DD directory holding .csv or .csv.gz files (nothing was staged or dropped)") }}
    {%- endif -%}
    {%- if outside -%}
        {{ exceptions.raise_compiler_error("run date " ~ run_date ~ " is outside the lake's days: lake " ~ root ~ " has "
            ~ dates | length ~ " days, " ~ dates[0] ~ " … " ~ dates[-1] ~ " (nothing was staged or dropped)") }}
    {%- endif -%}
{% endmacro %}
