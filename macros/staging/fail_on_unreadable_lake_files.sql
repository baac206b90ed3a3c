{#- Post-hook of each staging shard (base_lake__flow_lines_shard_N): a lake file that was not
    read whole (its reader failed part-way or at once, it changed while it was read, or it is
    empty: see lake_partition_program) is not bad data but a broken delivery. Loading the
    lines read before the error would lose the rest of the delivery without a word, so the
    build fails naming every such file with its reason, and the transaction (this shard's
    load) is rolled back: nothing of those days is staged, and the next run, once the files
    are fixed, loads them whole. The read-error rows are found through a partial index (made
    once, first in the hook list), not a scan of the load. -#}
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
    where reject_reason = 'file_read_error'
        and loaded_at = {{ sql_string_literal(run_started_at.isoformat()) }}::timestamptz;
    if unreadable is not null then
        raise exception 'lake files not read whole: %. Nothing of their days was loaded; fix or replace those files, then rerun.', unreadable;
    end if;
end
$$
    {%- endset -%}
    {{ return(sql) }}
{% endmacro %}
