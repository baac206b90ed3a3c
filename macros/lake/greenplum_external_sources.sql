{#- Greenplum: the lake through gpfdist. gpfdist runs on the host that holds the lake (started
    by `traffic-anomalies gpfdist up`, or with the configuration `gpfdist config` prints) and streams
    to all segments in parallel; its transforms run the project's line reader on each file
    (lake_reader_script, the same awk program as file_fdw's), so the
    rows are the same as file_fdw's on PostgreSQL:

      <schema>.flow_files        readable external table, transform ta_listing (stat only)
      <schema>.flows__YYYYMMDD   one readable external table per dt=… directory (ta_lines)
      <schema>.flows             a view: union all of the partitions, each with its dt as a
                                 constant, so a filter on literal dt values leaves the other
                                 partitions' files unread (the planner drops those branches)
      <schema>.flow_line_counts  the same over flow_line_counts__YYYYMMDD (ta_line_counts)

    Vars: `gpfdist_url` (gpfdist://host:port, or a list of them, each serving its own share
    of the files), `lake_dates` (stage exactly these days instead of listing the lake),
    `dry_run` (log the DDL instead of running it; dates then come from `lake_dates` only). -#}
{% macro greenplum__stage_external_sources(root, sources) %}
    {%- set schema = lake_schema() -%}
    {%- set dry_run = var('dry_run', false) in (true, 'true', 'True', 1, '1') -%}
    {%- set urls = greenplum_gpfdist_urls() -%}
    {%- set q_schema = adapter.quote(schema) -%}
    {%- set ddl = [
        "drop schema if exists " ~ q_schema ~ " cascade",
        "create schema " ~ q_schema,
    ] -%}
    {%- set partitioned = [] -%}
    {%- for node in sources -%}
        {%- if node.external.partition_by -%}
            {%- do partitioned.append(node) -%}
        {%- else -%}
            {%- do ddl.append(greenplum_external_table_ddl(
                q_schema ~ '.' ~ adapter.quote(node.identifier), external_column_list(node),
                urls, greenplum_lake_location(node) ~ '/dt=*/*', greenplum_transform(node))) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- do greenplum_run_ddl(ddl, dry_run) -%}

    {%- set dates = greenplum_lake_dates(schema, dry_run) -%}
    {%- set parts = [] -%}
    {%- for node in partitioned -%}
        {%- set branches = [] -%}
        {%- for dt in dates -%}
            {%- set partition = q_schema ~ '.' ~ adapter.quote(node.identifier ~ '__' ~ dt | replace('-', '')) -%}
            {%- do parts.append(greenplum_external_table_ddl(partition, external_column_list(node), urls,
                greenplum_lake_location(node) ~ '/dt=' ~ dt ~ '/*', greenplum_transform(node))) -%}
            {%- do branches.append(greenplum_partition_select(node, partition, dt)) -%}
        {%- endfor -%}
        {%- if not branches -%}
            {%- do branches.append(greenplum_partition_select(node, none, none)) -%}
        {%- endif -%}
        {%- do parts.append("create view " ~ q_schema ~ '.' ~ adapter.quote(node.identifier) ~ " as\n"
            ~ branches | join("\nunion all\n")) -%}
    {%- endfor -%}
    {%- do greenplum_run_ddl(parts, dry_run) -%}
    {{ log(("dry run: would stage " if dry_run else "staged ") ~ sources | length ~ " lake sources in schema "
        ~ schema ~ " from " ~ urls | join(', ') ~ ": " ~ dates | length ~ " partitions", info=true) }}
{% endmacro %}


{#- gpfdist://host[:port] (or gpfdists://), one or a list: each becomes a LOCATION URI. -#}
{% macro greenplum_gpfdist_urls() %}
    {%- set value = var('gpfdist_url', none) -%}
    {%- if value is none or value == '' or value == [] -%}
        {{ exceptions.raise_compiler_error("Greenplum reads the lake through gpfdist: set var gpfdist_url, e.g. --vars '{gpfdist_url: \"gpfdist://etl-host:8081\"}'") }}
    {%- endif -%}
    {%- set urls = [value] if value is string else value -%}
    {%- for url in urls -%}
        {%- if url is not string or not modules.re.fullmatch('gpfdists?://[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?', url.rstrip('/')) -%}
            {{ exceptions.raise_compiler_error("gpfdist_url must be gpfdist://host[:port] (or gpfdists://), got: " ~ (url | tojson)) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(urls | map('trim') | list) }}
{% endmacro %}


{#- The dataset's directory under gpfdist's root (the source's `external.location`). -#}
{% macro greenplum_lake_location(node) %}
    {%- set location = node.external.location | string -%}
    {%- if not modules.re.fullmatch('[A-Za-z0-9_][A-Za-z0-9_./-]*', location) or '..' in location -%}
        {{ exceptions.raise_compiler_error("external.location must be a relative path, got: " ~ (location | tojson)) }}
    {%- endif -%}
    {{ return(location.rstrip('/')) }}
{% endmacro %}


{#- The gpfdist transform (configured by `traffic-anomalies gpfdist`) for a source's reader. -#}
{% macro greenplum_transform(node) %}
    {%- set transforms = {'lines': 'ta_lines', 'listing': 'ta_listing', 'line_counts': 'ta_line_counts'} -%}
    {%- set reader = node.external.reader -%}
    {%- if reader not in transforms -%}
        {{ exceptions.raise_compiler_error("unknown lake reader " ~ (reader | tojson) ~ " for source " ~ node.name) }}
    {%- endif -%}
    {{ return(transforms[reader]) }}
{% endmacro %}


{% macro greenplum_external_table_ddl(relation, columns, urls, path, transform) %}
    {%- set locations = [] -%}
    {%- for url in urls -%}
        {%- do locations.append(sql_string_literal(url.rstrip('/') ~ '/' ~ path ~ '#transform=' ~ transform)) -%}
    {%- endfor -%}
    {{ return("create readable external table " ~ relation ~ " (" ~ columns ~ ")\n"
        ~ "location (" ~ locations | join(', ') ~ ")\n"
        ~ "format 'TEXT' (delimiter E'\\t' null E'\\\\N')\n"
        ~ "encoding 'LATIN1'") }}
{% endmacro %}


{#- One branch of the partitioned source's view: the partition's rows with dt as a constant
    (none: the typed empty relation of a lake without partitions). -#}
{% macro greenplum_partition_select(node, partition, dt) %}
    {%- set partition_column = node.external.partition_by -%}
    {%- set columns = [] -%}
    {%- for column in node.columns.values() -%}
        {%- if column.name == partition_column and dt is not none -%}
            {%- do columns.append(sql_string_literal(validated_partition_date(dt)) ~ '::' ~ column.data_type ~ ' as ' ~ adapter.quote(column.name)) -%}
        {%- elif dt is none -%}
            {%- do columns.append('null::' ~ column.data_type ~ ' as ' ~ adapter.quote(column.name)) -%}
        {%- else -%}
            {%- do columns.append(adapter.quote(column.name)) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if dt is none -%}
        {{ return("select " ~ columns | join(', ') ~ " where false") }}
    {%- endif -%}
    {{ return("select " ~ columns | join(', ') ~ " from " ~ partition) }}
{% endmacro %}


{#- The days to stage: var `lake_dates`, else the lake's listing (read through gpfdist). -#}
{% macro greenplum_lake_dates(schema, dry_run) %}
    {%- set given = var('lake_dates', none) -%}
    {%- if given is not none -%}
        {%- set given = [given] if given is string else given -%}
        {%- set dates = [] -%}
        {%- for d in given | map('string') | unique | sort -%}
            {%- do dates.append(validated_partition_date(d)) -%}
        {%- endfor -%}
        {{ return(dates) }}
    {%- endif -%}
    {%- if dry_run -%}
        {{ log("dry run: no var lake_dates, so no partitions are listed", info=true) }}
        {{ return([]) }}
    {%- endif -%}
    {%- set listing = adapter.quote(schema) ~ '.' ~ adapter.quote('flow_files') -%}
    {%- set dates = [] -%}
    {%- for d in run_query("select distinct dt::text from " ~ listing ~ " order by 1").columns[0].values() -%}
        {%- do dates.append(validated_partition_date(d)) -%}
    {%- endfor -%}
    {{ return(dates) }}
{% endmacro %}


{#- Run the statements in one transaction, or (dry run) log them, each ending with `;`. -#}
{% macro greenplum_run_ddl(statements, dry_run) %}
    {%- if not statements -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if dry_run -%}
        {%- for statement in statements -%}
            {{ log("-- dry_run ddl\n" ~ statement ~ ";", info=true) }}
        {%- endfor -%}
    {%- else -%}
        {%- do run_query(statements | join(";\n")) -%}
        {%- do run_query("commit") -%}
    {%- endif -%}
{% endmacro %}
