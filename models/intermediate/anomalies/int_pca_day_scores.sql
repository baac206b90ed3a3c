{{ config(materialized='table') }}

{#- The 24 projection tables written by pca_sparse_project, one row per (hour, day,
    component): the coordinate of the day's centred flow counts along the component. -#}

with

projection_rows as (

    {% for model_name in pca_hour_model_names() %}
    select
        {{ loop.index0 }} as hour_of_day,
        row_id as day_index,
        row_vec
    from {{ pca_companion(model_name, '_projection') }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

scores as (

    select
        projection_rows.hour_of_day,
        projection_rows.day_index,
        entries.component_rank::int as component_rank,
        entries.score
    from projection_rows
    cross join unnest(projection_rows.row_vec) with ordinality as entries (score, component_rank)

)

select
    hour_of_day,
    day_index,
    component_rank,
    score
from scores
