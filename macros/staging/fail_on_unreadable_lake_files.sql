{#- Post-hook of each staging shard (stg_lake__flow_lines_shard_N): a lake file of which not
    one line could be read (no permission, a .gz that is not gzip, …) is not bad data but a
    broken delivery, so the build fails naming every such file, and the transaction (this
    shard's load) is rolled back. A file read in part (a truncated gzip) is kept: its lines
    are staged, the read error is quarantined. -#}
{% macro fail_on_unreadable_lake_files(relation) %}
    {%- set sql -%}
do $$
declare
    unreadable text;
begin
    select string_agg('dt=' || dt || '/' || source_file || ' (' || coalesce(rejected_line, 'read error') || ')', ', '
                      order by dt, source_file)
    into unreadable
    from {{ relation }}
    where line_number = 1 and reject_reason = 'file_read_error'
        and loaded_at = {{ sql_string_literal(run_started_at.isoformat()) }}::timestamptz;
    if unreadable is not null then
        raise exception 'lake files that cannot be read at all: %. Fix their permissions or contents (or move them out of the lake), then rerun.', unreadable;
    end if;
end
$$
    {%- endset -%}
    {{ return(sql) }}
{% endmacro %}
