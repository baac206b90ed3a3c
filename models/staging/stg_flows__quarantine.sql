{{ config(materialized='view') }}

{#- Every lake line that did not become a flow, with the reason: nothing is dropped silently.
    Lines of a file with an unexpected header are here even when they look valid. -#}

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
    from {{ ref('stg_lake__flow_lines') }}

),

distrusted_files as (

    select
        dt,
        source_file
    from lines
    where line_number = 1 and reject_reason = 'unexpected_header'

),

quarantined as (

    select
        lines.dt,
        lines.source_file,
        lines.line_number,
        coalesce(lines.reject_reason, 'file_has_unexpected_header') as reject_reason,
        lines.rejected_line,
        lines.loaded_at
    from lines
    left join distrusted_files
        on lines.dt = distrusted_files.dt and lines.source_file = distrusted_files.source_file
    where
        lines.line_status = 'rejected'
        or (lines.line_status = 'valid' and distrusted_files.source_file is not null)

)

select
    dt,
    source_file,
    line_number,
    reject_reason,
    rejected_line,
    loaded_at
from quarantined
