{{ config(materialized='view') }}

{#- Every lake line that did not become a flow, with the reason: nothing is dropped silently. -#}

with

lines as (

    select
        dt,
        source_file,
        line_number,
        line_status,
        reject_reason,
        rejected_line,
        loaded_at
    from {{ ref('base_lake__flow_lines') }}

)

select
    dt,
    source_file,
    line_number,
    reject_reason,
    rejected_line,
    loaded_at
from lines
where line_status = 'rejected'
