{#- The grain: no two rows share the same values in `combination_of_columns`. -#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

with

grain as (

    select
        {{ combination_of_columns | join(', ') }},
        count(*) as row_count
    from {{ model }}
    group by {{ combination_of_columns | join(', ') }}

)

select
    {{ combination_of_columns | join(', ') }},
    row_count
from grain
where row_count > 1

{% endtest %}
