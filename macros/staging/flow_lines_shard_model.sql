{#- The body of each staging shard model (base_lake__flow_lines_shard_N): every lake line of
    the days of that shard, typed when valid, with its reject reason when not. A lake day belongs
    to one shard (its day number modulo the shard count), and every check of a line (duplicates
    and distrusted files included) looks only within its own day, so the shards are independent:
    dbt builds them at once, one backend each (parsing 20 M lines in SQL is the longest step of
    a full load; one backend uses one core). base_lake__flow_lines is their union.

    pre_hook: the planner cannot estimate the lake (file_fdw guesses a few rows per day) and
    would check each line against the repeated lines in a nested loop, quadratic in the size
    of a day, or sort every line of the load to merge-join it with a handful of distrusted
    files. Hash joins only (the small side hashed), for this model's transaction. -#}
{% macro flow_lines_shard_model() %}
{%- set shard = model.name.split('_shard_')[-1] | int -%}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key=['dt'],
        on_schema_change='fail',
        tags=['staging_shard'],
        meta={'shard': shard, 'shards': staging_shard_count()},
        pre_hook=["set local enable_nestloop = off", "set local enable_mergejoin = off"],
        post_hook=[
            "create index if not exists {{ this.identifier }}__dt on {{ this }} (dt)",
            "create index if not exists {{ this.identifier }}__loaded_at on {{ this }} (loaded_at)",
            "create index if not exists {{ this.identifier }}__activity_date on {{ this }} (activity_date) where line_status = 'valid'",
            "create index if not exists {{ this.identifier }}__first_lines on {{ this }} (dt, source_file) where line_number = 1",
            "create index if not exists {{ this.identifier }}__read_errors on {{ this }} (loaded_at) where reject_reason = 'file_read_error'",
            "{{ fail_on_unreadable_lake_files(this) }}",
        ],
    )
}}

{#- Every lake line of the days being loaded, once: typed when valid, with the reason when
    not. Only the days not loaded yet are read (see lake_dates_to_load). -#}
{%- set expected_header = 'start_time,user_name,src_ip,dst_ip,dst_port,protocol,bytes' -%}
{%- set dates = dates_of_shard(lake_dates_to_load(this if is_incremental() else none), shard) -%}

with

lake_lines as (

    select
        dt,
        source_file,
        line_number,
        raw_line,
        read_error,
        line_check,
        started_at_epoch,
        timestamp_format,
        activity_date,
        hour_of_day,
        user_name,
        src_ip,
        dst_ip,
        dst_port,
        protocol,
        bytes
    from {{ source('lake', 'flows') }}
    where {{ date_in_list('dt', dates) }}

),

{# Nearly every line: the reader (lake_reader_awk) has split and checked it at C speed, the
   typed fields came in through COPY's input functions; what is left is a cast of the time. #}
reader_checked as (

    select
        dt,
        source_file,
        line_number,
        raw_line,
        read_error,
        raw_line as line_text,  -- printable ASCII: the bytes are the text
        nullif(line_check, 'valid') as reject_reason,
        to_timestamp(started_at_epoch) as started_at,
        timestamp_format,
        activity_date,
        hour_of_day,
        user_name,
        src_ip,
        dst_ip,
        dst_port,
        protocol,
        bytes
    from lake_lines
    where line_check is not null

),

{# The rest (the headers, malformed lines, rare spellings): every check in SQL, in order. #}
sql_checked as (

    select
        dt,
        source_file,
        line_number,
        raw_line,
        read_error
    from lake_lines
    where line_check is null

),

decoded as (

    select
        dt,
        source_file,
        line_number,
        raw_line,
        read_error,
        case
            when raw_line ~ '^[\x01-\x7f]*$' then raw_line
            when {{ is_valid_utf8_bytes('raw_line') }}
                then convert_from(convert_to(raw_line, 'LATIN1'), 'UTF8')
        end as line_text
    from sql_checked
    -- offset 0 (here, in split and in fields) evaluates each step once per line: inlined,
    -- every use of line_text or fields[i] below would repeat the decode and the split
    offset 0  -- noqa: AM09

),

split as (

    select
        dt,
        source_file,
        line_number,
        raw_line,
        read_error,
        line_text,
        string_to_array(line_text, ',') as fields
    from decoded
    offset 0  -- noqa: AM09

),

fields as (

    select
        dt,
        source_file,
        line_number,
        raw_line,
        read_error,
        line_text,
        cardinality(fields) as field_count,
        fields[1] as start_time_text,
        fields[2] as user_name,
        fields[3] as src_ip_text,
        fields[4] as dst_ip_text,
        fields[5] as dst_port_text,
        fields[6] as protocol,
        fields[7] as bytes_text
    from split
    offset 0  -- noqa: AM09

),

timed as (

    select
        *,
        {{ parse_flow_timestamp('start_time_text') }} as started_at
    from fields
    offset 0  -- noqa: AM09

),

sql_classified as (

    select
        *,
        case
            when read_error is not null and raw_line is null then 'file_read_error'
            when read_error is not null then 'incomplete_line'
            when line_number = 1 and line_text = '{{ expected_header }}' then null
            when line_number = 1 then 'unexpected_header'
            when line_text is null then 'invalid_utf8'
            when line_text = '' then 'empty_line'
            when line_text ~ '[\x01-\x1f\x7f]' then 'control_characters'
            when field_count <> 7 then 'wrong_column_count'
            when started_at is null then 'bad_timestamp'
            when started_at < dt - interval '1 day' or started_at >= dt + interval '2 days'
                then 'timestamp_outside_partition'
            when btrim(user_name) = '' then 'empty_user'
            when user_name <> btrim(user_name) or length(user_name) > 128 then 'bad_user_name'
            when not {{ is_ip_address('src_ip_text') }} then 'bad_src_ip'
            when not {{ is_ip_address('dst_ip_text') }} then 'bad_dst_ip'
            when dst_port_text !~ '^[0-9]{1,5}$' or dst_port_text::int > 65535 then 'bad_dst_port'
            when protocol !~ '^[a-z0-9-]{1,16}$' then 'bad_protocol'
            when bytes_text ~ '^-[0-9]+$' then 'negative_bytes'
            when bytes_text !~ '^[0-9]+$' then 'non_numeric_bytes'
            when length(bytes_text) > 13 then 'bytes_out_of_range'
        end as reject_reason
    from timed
    offset 0  -- noqa: AM09

),

{# Both paths, with the same columns; the casts only on data lines that passed every check
   (their values have been checked by shape: no cast can fail). #}
classified as (

    select
        dt,
        source_file,
        line_number,
        raw_line,
        read_error,
        line_text,
        reject_reason,
        started_at,
        timestamp_format,
        activity_date,
        hour_of_day,
        user_name,
        src_ip,
        dst_ip,
        dst_port,
        protocol,
        bytes
    from reader_checked

    union all

    select
        dt,
        source_file,
        line_number,
        raw_line,
        read_error,
        line_text,
        reject_reason,
        started_at,
        {{ flow_timestamp_format('start_time_text') }} as timestamp_format,
        (started_at at time zone 'UTC')::date as activity_date,
        extract(hour from started_at at time zone 'UTC')::int as hour_of_day,
        user_name,
        case when reject_reason is null and line_number > 1 then src_ip_text::inet end as src_ip,
        case when reject_reason is null and line_number > 1 then dst_ip_text::inet end as dst_ip,
        case when reject_reason is null and line_number > 1 then dst_port_text::int end as dst_port,
        protocol,
        case when reject_reason is null and line_number > 1 then bytes_text::bigint end as bytes
    from sql_classified

),

{# A valid line repeated verbatim within its day is a re-delivered record: the first copy (by
   file, then line number) is the flow, later copies are `duplicate_line`. Cheap: a hash
   aggregate of the day's lines on a 4-byte hash finds the few repeated ones, and only those
   are compared exactly and ranked (no sort of all lines). #}
repeated_hashes as (

    select
        dt,
        hashtext(line_text) as line_hash
    from classified
    where reject_reason is null and line_number > 1
    group by dt, hashtext(line_text)
    having count(*) > 1

),

later_copies as (

    select
        dt,
        source_file,
        line_number
    from (
        select
            classified.dt,
            classified.source_file,
            classified.line_number,
            row_number() over (
                partition by classified.dt, classified.line_text
                order by classified.source_file, classified.line_number
            ) as copy_number
        from classified
        inner join repeated_hashes
            on classified.dt = repeated_hashes.dt and hashtext(classified.line_text) = repeated_hashes.line_hash
        where classified.reject_reason is null and classified.line_number > 1
    ) as copies
    where copy_number > 1

),

{# A file whose first line is not the expected header is distrusted as a whole (its columns
   may be in another order): its other lines are rejected too. (First lines are checked in
   SQL: the few SQL-checked lines are enough to find them.) #}
distrusted_files as (

    select
        dt,
        source_file
    from sql_classified
    where line_number = 1 and reject_reason = 'unexpected_header'

),

deduplicated as (

    select
        classified.dt,
        classified.source_file,
        classified.line_number,
        classified.raw_line,
        classified.read_error,
        classified.line_text,
        classified.started_at,
        classified.timestamp_format,
        classified.activity_date,
        classified.hour_of_day,
        classified.user_name,
        classified.src_ip,
        classified.dst_ip,
        classified.dst_port,
        classified.protocol,
        classified.bytes,
        coalesce(
            classified.reject_reason,
            case when distrusted_files.source_file is not null then 'file_has_unexpected_header' end,
            case when later_copies.line_number is not null then 'duplicate_line' end
        ) as reject_reason
    from classified
    left join distrusted_files
        on classified.dt = distrusted_files.dt and classified.source_file = distrusted_files.source_file
    left join later_copies
        on
            classified.dt = later_copies.dt
            and classified.source_file = later_copies.source_file
            and classified.line_number = later_copies.line_number

),

flagged as (

    select
        *,
        reject_reason is null and line_number > 1 as is_flow
    from deduplicated

),

final as (

    select
        dt,
        source_file,
        line_number,
        case
            when reject_reason is not null then 'rejected'
            when line_number = 1 then 'header'
            else 'valid'
        end::text as line_status,
        reject_reason::text as reject_reason,
        case when reject_reason is not null then coalesce(line_text, raw_line, read_error) end::text as rejected_line,
        case when is_flow then started_at end as started_at,
        case when is_flow then timestamp_format end::text as timestamp_format,
        case when is_flow then activity_date end as activity_date,
        case when is_flow then hour_of_day end as hour_of_day,
        case when is_flow then user_name end::text as user_name,
        case when is_flow then src_ip end as src_ip,
        case when is_flow then dst_ip end as dst_ip,
        case when is_flow then dst_port end as dst_port,
        case when is_flow then protocol end::text as protocol,
        case when is_flow then bytes end as bytes,
        '{{ run_started_at.isoformat() }}'::timestamptz as loaded_at
    from flagged

)

select
    dt,
    source_file,
    line_number,
    line_status,
    reject_reason,
    rejected_line,
    started_at,
    timestamp_format,
    activity_date,
    hour_of_day,
    user_name,
    src_ip,
    dst_ip,
    dst_port,
    protocol,
    bytes,
    loaded_at
from final
{% endmacro %}


{#- How many staging shards there are: models base_lake__flow_lines_shard_0 .. _N-1 (one-line
    files), all unioned by base_lake__flow_lines. Two, one per core of a small machine; on a
    bigger one, add shard model files, add them to the union in base_lake__flow_lines and raise
    this number, then rebuild staging with --full-refresh (the day-to-shard rule changes with
    the count, and a day must live in one shard only: the uniqueness test of the union would
    fail otherwise). -#}
{% macro staging_shard_count() %}
    {{ return(2) }}
{% endmacro %}


{#- The days of `dates` (ISO strings) that belong to shard `shard`: day number (proleptic
    Gregorian ordinal) modulo the shard count, so consecutive days alternate between shards. -#}
{% macro dates_of_shard(dates, shard) %}
    {%- set shards = staging_shard_count() | int -%}
    {%- if shard < 0 or shard >= shards -%}
        {{ exceptions.raise_compiler_error("staging shard " ~ shard ~ " does not exist: staging_shard_count() is " ~ shards) }}
    {%- endif -%}
    {%- set mine = [] -%}
    {%- for d in dates -%}
        {%- if modules.datetime.date.fromisoformat(d).toordinal() % shards == shard -%}
            {%- do mine.append(d) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(mine) }}
{% endmacro %}
