{#- The lake partitions (days) a staging build reads: those present in the lake up to the
    run date (var `run_date`, default: no limit) that the model has not loaded yet, plus any
    listed in var `reload_dates`. Returned as a list so the filter on `dt` is a literal and
    the planner skips every other partition without opening its files. -#}
{% macro lake_dates_to_load(loaded_relation=none) %}
    {#- called before the execute guard, so that dbt records the listing as a source of the
        calling model (lineage, docs, freshness) -#}
    {%- set listing = source('lake', 'flow_files') -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {#- vars first: a bad value is refused even before the lake is staged -#}
    {%- set run_date = var('run_date', none) -%}
    {%- set run_date = validated_partition_date(run_date) if run_date else none -%}
    {%- set reload = validated_reload_dates() -%}
    {#- asked of the catalog, not adapter.get_relation: dbt's relation cache lists tables and
        views only, so a foreign table (file_fdw) would always look missing -#}
    {%- set staged = run_query("select to_regclass(" ~ sql_string_literal(listing.include(database=false) | string) ~ ") is not null") -%}
    {%- if not staged.columns[0].values()[0] -%}
        {#- not staged yet (e.g. compiling or linting on a fresh database): nothing to load -#}
        {{ return([]) }}
    {%- endif -%}
    {%- set conditions = [] -%}
    {%- if run_date -%}
        {%- do conditions.append("dt <= " ~ sql_string_literal(validated_partition_date(run_date)) ~ "::date") -%}
    {%- endif -%}
    {%- if loaded_relation is not none -%}
        {%- set reload_list = [] -%}
        {%- for d in reload -%}{%- do reload_list.append(sql_string_literal(validated_partition_date(d)) ~ "::date") -%}{%- endfor -%}
        {%- do conditions.append("(not exists (select 1 from " ~ loaded_relation ~ " as loaded where loaded.dt = listed.dt)"
            ~ (" or listed.dt in (" ~ reload_list | join(', ') ~ ")" if reload_list else "") ~ ")") -%}
    {%- endif -%}
    {%- set query -%}
        select distinct listed.dt::text
        from {{ listing }} as listed
        {% if conditions %}where {{ conditions | join(' and ') }}{% endif %}
        order by 1
    {%- endset -%}
    {{ return(run_query(query).columns[0].values() | list) }}
{% endmacro %}


{% macro date_in_list(column, dates) %}
    {%- if dates | length == 0 -%}
        false
    {%- else -%}
        {{ column }} in ({% for d in dates %}{{ sql_string_literal(validated_partition_date(d)) }}::date{{ ", " if not loop.last }}{% endfor %})
    {%- endif -%}
{% endmacro %}
