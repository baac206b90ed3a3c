{#-
  madlib_compat's helpers (MADlib's utilities module): the schema, identifiers that user text
  names (parsed, never spliced), planner settings for one transaction, and the small
  builders the set-based statements use. Installed first: everything else calls them.
-#}
{% macro madlib_compat__utils_ddl() %}
{% raw %}
do $$
begin
    -- an existing schema's owner (the nightly job's role) need not be allowed to create schemas
    if not exists (select 1 from pg_namespace where nspname = 'madlib_compat') then
        create schema madlib_compat;
    end if;
end
$$;

-- Split a possibly schema-qualified, possibly double-quoted table name into
-- {schema, name} with PostgreSQL's own folding rules (unquoted -> lower case).
-- Anything that is not a plain identifier ("x; drop table y", "a.b.c", "")
-- returns null, so no caller ever splices user text into SQL.
create or replace function madlib_compat._parse_qualified_name(p_name text)
returns text[]
language plpgsql immutable as $$
declare
    v_parts text[] := array[]::text[];
    v_pos int := 1;
    v_len int;
    v_ch text;
    v_cur text;
    v_end int;
begin
    if p_name is null then
        return null;
    end if;
    p_name := btrim(p_name);
    v_len := length(p_name);
    if v_len = 0 then
        return null;
    end if;
    loop
        if v_pos > v_len then
            return null;                      -- trailing dot
        end if;
        v_ch := substr(p_name, v_pos, 1);
        if v_ch = '"' then
            -- quoted identifier: "" is an escaped quote
            v_cur := '';
            v_pos := v_pos + 1;
            loop
                v_end := strpos(substr(p_name, v_pos), '"');
                if v_end = 0 then
                    return null;              -- unterminated quote
                end if;
                v_cur := v_cur || substr(p_name, v_pos, v_end - 1);
                v_pos := v_pos + v_end;
                if substr(p_name, v_pos, 1) = '"' then
                    v_cur := v_cur || '"';
                    v_pos := v_pos + 1;
                else
                    exit;
                end if;
            end loop;
            if v_cur = '' then
                return null;
            end if;
        else
            v_cur := substring(substr(p_name, v_pos) from '^[A-Za-z_][A-Za-z0-9_$]*');
            if v_cur is null then
                return null;
            end if;
            v_pos := v_pos + length(v_cur);
            v_cur := lower(v_cur);
        end if;
        v_parts := v_parts || v_cur;
        if v_pos > v_len then
            exit;
        end if;
        if substr(p_name, v_pos, 1) <> '.' then
            return null;
        end if;
        v_pos := v_pos + 1;
    end loop;
    if cardinality(v_parts) = 1 then
        return array[null, v_parts[1]];
    elsif cardinality(v_parts) = 2 then
        return v_parts;
    end if;
    return null;
end
$$;

-- How the PCA statements write a CTE that must be computed once: MATERIALIZED
-- on PostgreSQL. Greenplum turns a materialized CTE read from several places
-- into a cross-slice shared scan, whose producer and consumers can wait on each
-- other for ever when a consumer is an InitPlan (seen on Greenplum 7): there
-- the CTEs are inlined (recomputed per use, small per call). The server is asked
-- what it is (its segment catalog), not matched by name.
create or replace function madlib_compat._cte_materialized()
returns text
language sql stable parallel safe as $$
    select case when pg_catalog.to_regclass('pg_catalog.gp_segment_configuration') is null
                then 'materialized' else 'not materialized' end
$$;

-- Set a planner setting for the rest of the transaction if this server has it
-- (no-op on servers without it, e.g. Greenplum 6 has no jit); returns the old
-- value so the caller can put it back. current_setting(.., true) rather than
-- pg_settings: that view builds every setting of the server on each read.
create or replace function madlib_compat._set_if_exists(p_name text, p_value text)
returns text
language plpgsql as $$
declare
    v_old text := pg_catalog.current_setting(p_name, true);
begin
    if v_old is not null and p_value is not null then
        perform pg_catalog.set_config(p_name, p_value, true);
    end if;
    return v_old;
end
$$;

-- Safe, quoted rendering of a parsed name.
create or replace function madlib_compat._quote_qualified_name(p_parts text[])
returns text
language sql immutable as $$
    select case when $1[1] is null then quote_ident($1[2])
                else quote_ident($1[1]) || '.' || quote_ident($1[2]) end
$$;

-- Oid of an existing table/view named by user text, or null.
create or replace function madlib_compat._resolve_relation(p_name text)
returns oid
language plpgsql stable as $$
declare
    v_parts text[] := madlib_compat._parse_qualified_name(p_name);
    v_oid oid;
begin
    if v_parts is null then
        return null;
    end if;
    begin
        v_oid := madlib_compat._quote_qualified_name(v_parts)::regclass::oid;
    exception when undefined_table or invalid_schema_name then
        return null;
    end;
    return v_oid;
end
$$;

-- Does a relation of that name exist where CREATE TABLE would put it?
-- (MADlib's table_exists(..., only_first_schema=True).)
create or replace function madlib_compat._output_exists(p_parts text[])
returns boolean
language sql stable as $$
    select exists (
        select 1
        from pg_catalog.pg_class c
        join pg_catalog.pg_namespace n on n.oid = c.relnamespace
        where c.relname = $1[2]
          and n.nspname = coalesce($1[1], current_schema())
    )
$$;

-- Quoted column name if p_col names a column of relation p_rel, else null.
create or replace function madlib_compat._column(p_rel oid, p_col text)
returns text
language plpgsql stable as $$
declare
    v_name text;
    v_found text;
begin
    if p_col is null or p_rel is null then
        return null;
    end if;
    p_col := btrim(p_col);
    if p_col ~ '^"([^"]|"")+"$' then
        v_name := replace(substr(p_col, 2, length(p_col) - 2), '""', '"');
    elsif p_col ~ '^[A-Za-z_][A-Za-z0-9_$]*$' then
        v_name := lower(p_col);
    else
        return null;
    end if;
    select a.attname into v_found
    from pg_catalog.pg_attribute a
    where a.attrelid = p_rel and a.attname = v_name
      and a.attnum > 0 and not a.attisdropped;
    if v_found is null then
        return null;
    end if;
    return quote_ident(v_found);
end
$$;

-- Dense float8[p_n] from 1-based positions and values, for set-based callers
-- that check the input themselves: null when a position is null, outside
-- 1..p_n or given twice (the caller then reports MADlib's error), else the
-- dense vector with 0 where nothing was given.
create or replace function madlib_compat._dense(p_n int, p_idx int[], p_val float8[])
returns float8[]
language plpgsql immutable parallel safe as $$
declare
    v_d float8[] := array_fill(null::float8, array[p_n]);
    v_t int;
    v_i int;
begin
    for v_t in 1 .. coalesce(cardinality(p_idx), 0) loop
        v_i := p_idx[v_t];
        if v_i is null or v_i < 1 or v_i > p_n or v_d[v_i] is not null then
            return null;
        end if;
        v_d[v_i] := p_val[v_t];
    end loop;
    return array_replace(v_d, null::float8, 0::float8);
end
$$;

-- Raise work_mem for the rest of the transaction to at least p_kb kilobytes
-- (never lowers it); returns the old value for the caller to put back. The
-- PCA statements hash a few MB per call; at the 4MB default they spill to disk.
create or replace function madlib_compat._raise_work_mem(p_kb int)
returns text
language plpgsql as $$
declare
    v_old text := pg_catalog.current_setting('work_mem');
    v_m text[] := regexp_match(v_old, '^\s*(\d+)\s*(kB|MB|GB|TB)?\s*$');
    v_kb bigint;
begin
    if v_m is not null then
        v_kb := v_m[1]::bigint * case v_m[2] when 'MB' then 1024 when 'GB' then 1048576
                                             when 'TB' then 1073741824 else 1 end;
        if v_kb < p_kb then
            perform pg_catalog.set_config('work_mem', p_kb || 'kB', true);
        end if;
    end if;
    return v_old;
end
$$;

-- "<fmt with %1$s = i>, ..." for i = 1..p_n: the select lists of the wide
-- statements (one aggregate or column per component / Gram column).
create or replace function madlib_compat._list(p_fmt text, p_n int, p_sep text default ', ')
returns text
language sql immutable as $$
    select coalesce(string_agg(format($1, i), $3 order by i), '')
    from generate_series(1, $2) as i
$$;

-- Comma-separated grouping column list -> quoted column names of p_rel
-- (null when one of them is not a column).
create or replace function madlib_compat._grouping_columns(p_rel oid, p_list text)
returns text[]
language plpgsql stable as $$
declare
    v_out text[] := array[]::text[];
    v_tok text;
    v_col text;
begin
    if p_list is null or btrim(p_list) = '' then
        return v_out;
    end if;
    for v_tok in
        select btrim(t.m[1])
        from regexp_matches(p_list, '((?:"(?:[^"]|"")*"|[^,])+)', 'g') as t(m)
    loop
        v_col := madlib_compat._column(p_rel, v_tok);
        if v_col is null then
            return null;
        end if;
        if not v_col = any (v_out) then
            v_out := v_out || v_col;
        end if;
    end loop;
    return v_out;
end
$$;
{% endraw %}
{% endmacro %}
