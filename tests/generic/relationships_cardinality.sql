{#- Join cardinality: every row of `model` matches exactly one row of `to` on the given key
    columns (a duplicate in `to` would fan the join out; a missing one would drop rows). -#}
{% test matches_exactly_one(model, column_name, to, field) %}

with

targets as (

    select
        {{ field }} as key_value,
        count(*) as match_count
    from {{ to }}
    group by {{ field }}

),

checked as (

    select
        source_rows.{{ column_name }} as key_value,
        coalesce(targets.match_count, 0) as match_count
    -- a subquery: with a `where` config, `model` is itself an aliased subquery
    from (select {{ column_name }} from {{ model }}) as source_rows
    left join targets on source_rows.{{ column_name }} = targets.key_value
    where source_rows.{{ column_name }} is not null

)

select
    key_value,
    match_count
from checked
where match_count <> 1

{% endtest %}
