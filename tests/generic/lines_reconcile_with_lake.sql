{#- Reconciliation: for every lake file the model has loaded, the number of lines counted
    independently in the lake equals the number of rows the model holds for that file
    (each line staged exactly once, as header, flow or quarantined line). A file read error
    row is not a line, so it is left out of the count. The days the (scoped) model holds are
    looked up first and named as literals, so that only their files are counted (the counts
    are partitioned by day: a nightly run decompresses one day, not the whole lake). -#}
{% test lines_reconcile_with_lake(model, line_counts) %}

{%- set days = [] -%}
{%- if execute -%}
    {%- for day in run_query("select distinct dt::text from " ~ model ~ " where dt is not null order by 1").columns[0].values() -%}
        {%- do days.append(validated_partition_date(day)) -%}
    {%- endfor -%}
{%- endif %}

with

loaded as (

    select
        dt,
        source_file,
        count(*) filter (where reject_reason is distinct from 'file_read_error') as staged_lines
    from {{ model }}
    group by dt, source_file

),

counted as (

    select
        dt,
        source_file,
        line_count
    from {{ line_counts }}
    {%- if days %}
    where dt in ({% for day in days %}'{{ day }}'::date{% if not loop.last %}, {% endif %}{% endfor %})
    {%- else %}
    where false
    {%- endif %}

),

compared as (

    select
        coalesce(loaded.dt, counted.dt) as dt,
        coalesce(loaded.source_file, counted.source_file) as source_file,
        coalesce(loaded.staged_lines, 0) as staged_lines,
        counted.line_count as lake_lines
    from loaded
    left join counted
        on loaded.dt = counted.dt and loaded.source_file = counted.source_file

)

select
    dt,
    source_file,
    staged_lines,
    lake_lines
from compared
where lake_lines is null or staged_lines <> lake_lines

{% endtest %}
