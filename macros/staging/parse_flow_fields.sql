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
