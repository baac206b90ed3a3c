{#- Casts that never raise: every value is checked by shape before it is cast, so one bad
    line is quarantined with its reason instead of failing the whole load. -#}

{#- ISO-8601 UTC (`2017-01-12T12:03:04Z`, optional fraction) or epoch seconds
    (`1484222584`, 9–10 digits, optional fraction); null when neither or not a real date. -#}
{% macro parse_flow_timestamp(expr) %}
    case
        when {{ expr }} ~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?Z$'
            and substr({{ expr }}, 1, 4)::int between 1 and 9999
            and substr({{ expr }}, 9, 2)::int <= extract(day from (
                make_date(substr({{ expr }}, 1, 4)::int, substr({{ expr }}, 6, 2)::int, 1)
                + interval '1 month' - interval '1 day'))
            then ({{ expr }})::timestamptz
        when {{ expr }} ~ '^[0-9]{9,10}(\.[0-9]{1,6})?$'
            then to_timestamp(({{ expr }})::numeric)
    end
{% endmacro %}


{#- Which of the two forms a start_time is written in (null when neither). -#}
{% macro flow_timestamp_format(expr) %}
    case
        when {{ expr }} ~ '^[0-9]{4}-' then 'iso8601'
        when {{ expr }} ~ '^[0-9]{9,10}(\.[0-9]{1,6})?$' then 'epoch'
    end
{% endmacro %}


{#- A dotted-quad IPv4 or an IPv6 address (full, or with one `::`), safe to cast to inet.
    Rare valid IPv6 spellings outside these shapes are quarantined, never cast. -#}
{% macro is_ip_address(expr) %}
    (
        {{ expr }} ~ '^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$'
        or {{ expr }} ~* '^([0-9a-f]{1,4}:){7}[0-9a-f]{1,4}$'
        or ({{ expr }} ~* '^(([0-9a-f]{1,4}:){0,6}[0-9a-f]{1,4})?::(([0-9a-f]{1,4}:){0,6}[0-9a-f]{1,4})?$'
            and length({{ expr }}) - length(replace({{ expr }}, ':', '')) <= 7)
    )
{% endmacro %}


{#- The lake is read as LATIN1 so that no byte sequence can fail the read; this tells whether
    the bytes (one character per byte) form valid UTF-8, so the line can be re-decoded. -#}
{% macro is_valid_utf8_bytes(expr) %}
    {{ expr }} ~ '^([\x01-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2})*$'
{% endmacro %}



{#- Fast path of the line checks. A regular expression costs PostgreSQL 0.3–3 µs a call (the
    long alternations of an IPv4 address or an ISO-8601 date most), and every line went through
    ~15 of them. The common, fully valid line is recognised instead with fewer and cheaper
    operations (hashed IN lists of the few hundred legal values of a short field); a line that
    is not recognised goes through every check above, in their order, so the reasons are the
    same. Each fast check accepts only values that its check above accepts (a subset). -#}

{#- A dotted-quad IPv4 address of four canonical octets ('0' … '255', no leading zero): exactly
    what the IPv4 alternative of is_ip_address accepts, 1 µs instead of 3 (PostgreSQL 14+ hashes
    IN lists of constants). -#}
{% macro is_plain_ipv4(expr) %}
    {%- if not hashed_in_lists() -%}
        {#- a linear IN list of 256 would cost more than the regular expression -#}
        {{ return("(" ~ expr ~ " ~ '^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$')") }}
    {%- endif -%}
    {%- set octets -%}
        {%- for start in range(0, 256, 32) %}
            {% for i in range(start, start + 32) %}'{{ i }}'{{ ", " if not loop.last }}{% endfor %}{{ "," if not loop.last }}
        {%- endfor %}
    {%- endset -%}
    (
        {{ expr }} not like '%.%.%.%.%'
        {%- for part in range(1, 5) %}
        and split_part({{ expr }}, '.', {{ part }}) in ({{ octets }}
        )
        {%- endfor %}
    )
{% endmacro %}


{#- Whether the server looks `x in (constants…)` up in a hash table (PostgreSQL 14+; not
    Greenplum 6 or 7). -#}
{% macro hashed_in_lists() %}
    {%- if not execute -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set query = "select current_setting('server_version_num')::int >= 140000 and version() not ilike '%greenplum%'" -%}
    {{ return(run_query(query).columns[0].values()[0]) }}
{% endmacro %}


{#- `YYYY-MM-DDTHH:MM:SSZ` (no fraction) on one of `days` (ISO strings of real calendar days):
    a subset of the ISO-8601 form of parse_flow_timestamp, calendar check included, so that
    the cast cannot fail. -#}
{% macro is_plain_iso_timestamp(expr, days) %}
    {%- if days | length == 0 -%}
        false
    {%- else -%}
    {%- set sixty -%}
        {%- for start in range(0, 60, 20) %}
            {% for i in range(start, start + 20) %}'{{ '%02d' % i }}'{{ ", " if not loop.last }}{% endfor %}{{ "," if not loop.last }}
        {%- endfor %}
    {%- endset -%}
    (
        {{ expr }} like '____-__-__T__:__:__Z'
        and left({{ expr }}, 10) in (
            {%- for d in days %}{{ sql_string_literal(d) }}{{ ", " if not loop.last }}{% if loop.index % 6 == 0 and not loop.last %}
            {% endif %}{% endfor -%}
        )
        and substr({{ expr }}, 12, 2) in (
            {% for i in range(24) %}'{{ '%02d' % i }}'{{ ", " if not loop.last }}{% if loop.index == 12 %}
            {% endif %}{% endfor %}
        )
        and substr({{ expr }}, 15, 2) in ({{ sixty }}
        )
        and substr({{ expr }}, 18, 2) in ({{ sixty }}
        )
    )
    {%- endif -%}
{% endmacro %}


{#- Every calendar day from the day before the first of `dates` to the day after the last, as
    ISO strings (the days a flow of those partitions may start on, and a few more). -#}
{% macro flow_days_around(dates) %}
    {%- set days = [] -%}
    {%- if dates | length > 0 -%}
        {%- set parsed = [] -%}
        {%- for d in dates -%}
            {%- do parsed.append(modules.datetime.date.fromisoformat(validated_partition_date(d) | string)) -%}
        {%- endfor -%}
        {%- set first = parsed | min -%}
        {%- set last = parsed | max -%}
        {%- set max_ordinal = modules.datetime.date.max.toordinal() -%}
        {%- for ordinal in range(first.toordinal() - 1, last.toordinal() + 2) if 1 <= ordinal <= max_ordinal -%}
            {%- do days.append(modules.datetime.date.fromordinal(ordinal).isoformat()) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(days) }}
{% endmacro %}
