{#- Reconciliation: for every lake file the model has loaded, the number of lines counted
    independently in the lake equals the number of rows the model holds for that file
    (each line staged exactly once, as header, flow or quarantined line). A file read error
    row is not a line, so it is left out of the count. Only the files of the days the (scoped)
    model holds are counted: the counts are partitioned by day, and each day is looked up
    through a lateral subquery, so PostgreSQL prunes the other days' partitions when it runs
    (a nightly run decompresses one day, not the whole lake). -#}
{% test lines_reconcile_with_lake(model, line_counts) %}

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
        day_counts.dt,
        day_counts.source_file,
        day_counts.line_count
    from (select distinct loaded.dt from loaded) as loaded_days
    cross join lateral (
        select
            line_counts.dt,
            line_counts.source_file,
            line_counts.line_count
        from {{ line_counts }} as line_counts
        where line_counts.dt = loaded_days.dt
        -- not pulled up into a join: the scan runs once per day, on that day's partition only
        offset 0
    ) as day_counts

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
