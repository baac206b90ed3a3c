{#-
  Small dense linear algebra and identifier helpers for the madlib_compat schema.
  Only matrices of side min(row_dim, col_dim) are handled here, procedurally;
  everything proportional to the data size is set-based SQL in the PCA macros.
-#}
{% macro madlib_compat__linalg_ddl() %}
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

-- Eigen-decomposition of a dense symmetric n x n matrix (row-major float8[n*n]):
-- Householder tridiagonalisation then implicit QL with shifts (the EISPACK
-- tred2/tql2 pair). Chosen over Jacobi because it is O(n^3) with a small
-- constant and needs no sweeps to converge; n is at most min(row_dim, col_dim).
-- Arrays are 1-D with computed offsets: PL/pgSQL reads/writes of expanded 1-D
-- arrays are O(1), 2-D subscripting is markedly slower.
-- Returns eigenvalues in descending order and the matching unit eigenvectors
-- column-major (vector i is vectors[(i-1)*n+1 : i*n]). _symeig_core: the
-- same, with only the p_k leading eigenvectors wanted (the others are 0), or,
-- p_k null and p_prop given, as many as the smallest k whose eigenvalues sum
-- to p_prop of the trace; p_k and p_prop both null: every vector through QL.
-- With a wanted count, QL runs without rotating eigenvectors (O(n^2)
-- statements instead of ~2n^3, the bulk of the full path) and each wanted
-- vector comes from inverse iteration on the tridiagonal matrix (EISPACK
-- tinvit: partial pivoting, close eigenvalues perturbed apart and their
-- vectors orthogonalised). x = Q y for all of them is then one set-based
-- statement, which also checks every vector (|A x - lambda x| within what QL
-- itself achieves); should one fail, or a group of close eigenvalues be too
-- large for cheap orthogonalisation, the full decomposition is used instead.
create or replace function madlib_compat._symeig_core(
    p_a float8[], p_n int, p_k int, p_prop float8, out eigenvalues float8[], out vectors float8[])
language plpgsql immutable parallel safe as $$
declare
    n int := p_n;
    v_fast boolean := (p_k is not null or p_prop is not null) and p_n >= 8;
    v_k int := p_k;
    v_tr float8;
    v_ok boolean;
    -- few vectors: apply the Householder reflections to them instead of
    -- accumulating Q (n^2 statements per vector against ~2n^3/3 in all)
    v_refl boolean := p_k is not null and p_n >= 8 and p_k * 2 <= p_n;
    dh float8[];
    dd float8[]; ee float8[];
    u1 float8[]; u2 float8[]; u3 float8[]; ml float8[]; pv boolean[];
    y float8[]; zz float8[]; x float8[];
    lam float8; lam_prev float8; tnorm float8; eps3 float8; curd float8; curs float8;
    sub float8; dg float8; sp float8; mt float8; nrm float8; tol float8;
    jj int; it int; gstart int; q int;
    v float8[] := p_a;                 -- V[i][j] = v[i*n + j + 1], 0-based i, j
    vt float8[];
    d float8[] := array_fill(0::float8, array[p_n]);
    e float8[] := array_fill(0::float8, array[p_n]);
    i int; j int; k int; l int; m int; o int; oj int; ok int;
    f float8; g float8; h float8; hh float8; scale float8;
    p float8; r float8; s float8; s2 float8; c float8; c2 float8; c3 float8;
    el1 float8; dl1 float8; tst1 float8; eps float8 := 2.220446049250313e-16;
    iter int;
    ord int[];
begin
    if n = 0 then
        eigenvalues := array[]::float8[];
        vectors := array[]::float8[];
        return;
    end if;
    if n = 1 then
        eigenvalues := array[p_a[1]];
        vectors := array[1::float8];
        return;
    end if;
    -- d/e are used 1-based below: d[j+1] holds EISPACK's d[j]
    o := (n - 1) * n;
    for j in 0 .. n - 1 loop
        d[j + 1] := v[o + j + 1];
    end loop;

    -- Householder reduction to tridiagonal form
    for i in reverse n - 1 .. 1 loop
        scale := 0;
        h := 0;
        for k in 1 .. i loop
            scale := scale + abs(d[k]);
        end loop;
        if scale = 0 then
            e[i + 1] := d[i];
            o := (i - 1) * n;
            for j in 0 .. i - 1 loop
                d[j + 1] := v[o + j + 1];
                v[i * n + j + 1] := 0;
                v[j * n + i + 1] := 0;
            end loop;
        else
            for k in 1 .. i loop
                d[k] := d[k] / scale;
                h := h + d[k] * d[k];
            end loop;
            f := d[i];
            g := sqrt(h);
            if f > 0 then
                g := -g;
            end if;
            e[i + 1] := scale * g;
            h := h - f * g;
            d[i] := f - g;
            for j in 1 .. i loop
                e[j] := 0;
            end loop;
            for j in 0 .. i - 1 loop
                f := d[j + 1];
                oj := j * n;
                v[oj + i + 1] := f;
                g := e[j + 1] + v[oj + j + 1] * f;
                for k in j + 1 .. i - 1 loop
                    g := g + v[k * n + j + 1] * d[k + 1];
                    e[k + 1] := e[k + 1] + v[k * n + j + 1] * f;
                end loop;
                e[j + 1] := g;
            end loop;
            f := 0;
            for j in 1 .. i loop
                e[j] := e[j] / h;
                f := f + e[j] * d[j];
            end loop;
            hh := f / (h + h);
            for j in 1 .. i loop
                e[j] := e[j] - hh * d[j];
            end loop;
            for j in 0 .. i - 1 loop
                f := d[j + 1];
                g := e[j + 1];
                for k in j .. i - 1 loop
                    v[k * n + j + 1] := v[k * n + j + 1] - (f * e[k + 1] + g * d[k + 1]);
                end loop;
                d[j + 1] := v[(i - 1) * n + j + 1];
                v[i * n + j + 1] := 0;
            end loop;
        end if;
        d[i + 1] := h;
    end loop;

    -- accumulate the transformations
    if v_refl then
        -- T's diagonal is left on V's diagonal; d holds each reflection's h
        dh := d;
        for j in 0 .. n - 1 loop
            d[j + 1] := v[j * n + j + 1];
        end loop;
        e[1] := 0;
    else
        for i in 0 .. n - 2 loop
            o := (n - 1) * n;
            v[o + i + 1] := v[i * n + i + 1];
            v[i * n + i + 1] := 1;
            h := d[i + 2];
            if h <> 0 then
                for k in 0 .. i loop
                    d[k + 1] := v[k * n + i + 2] / h;
                end loop;
                for j in 0 .. i loop
                    g := 0;
                    for k in 0 .. i loop
                        g := g + v[k * n + i + 2] * v[k * n + j + 1];
                    end loop;
                    for k in 0 .. i loop
                        v[k * n + j + 1] := v[k * n + j + 1] - g * d[k + 1];
                    end loop;
                end loop;
            end if;
            for k in 0 .. i loop
                v[k * n + i + 2] := 0;
            end loop;
        end loop;
        o := (n - 1) * n;
        for j in 0 .. n - 1 loop
            d[j + 1] := v[o + j + 1];
            v[o + j + 1] := 0;
        end loop;
        v[n * n] := 1;
        e[1] := 0;
    end if;

    -- the tridiagonal matrix: diagonal dd[1..n], ee[r] = T(r, r-1) for r >= 2
    dd := d;
    ee := e;

    -- QL runs once without vectors; should the wanted eigenvalues hold a group
    -- too large for inverse iteration, it runs again, rotating vectors
    <<ql>>
    loop
        -- QL rotates pairs of eigenvector columns: store V transposed so that a
        -- column is a contiguous run (vt[(c-1)*n + k], 1-based c, k)
        vt := array_fill(0::float8, array[n * n]);
        for k in 0 .. case when v_fast then -1 else n - 1 end loop
            o := k * n;
            for j in 0 .. n - 1 loop
                vt[j * n + k + 1] := v[o + j + 1];
            end loop;
        end loop;

        -- implicit QL iterations on the tridiagonal matrix
        for i in 2 .. n loop
            e[i - 1] := e[i];
        end loop;
        e[n] := 0;
        f := 0;
        tst1 := 0;
        for l in 1 .. n loop
            tst1 := greatest(tst1, abs(d[l]) + abs(e[l]));
            m := l;
            while m <= n loop
                exit when abs(e[m]) <= eps * tst1;
                m := m + 1;
            end loop;
            if m > n then
                m := n;
            end if;
            if m > l then
                iter := 0;
                loop
                    iter := iter + 1;
                    if iter > 60 then
                        raise exception 'PCA error: eigen-decomposition did not converge';
                    end if;
                    g := d[l];
                    p := (d[l + 1] - g) / (2 * e[l]);
                    r := sqrt(p * p + 1);
                    if p < 0 then
                        r := -r;
                    end if;
                    d[l] := e[l] / (p + r);
                    d[l + 1] := e[l] * (p + r);
                    dl1 := d[l + 1];
                    h := g - d[l];
                    for i in l + 2 .. n loop
                        d[i] := d[i] - h;
                    end loop;
                    f := f + h;
                    p := d[m];
                    c := 1; c2 := 1; c3 := 1;
                    el1 := e[l + 1];
                    s := 0; s2 := 0;
                    for i in reverse m - 1 .. l loop
                        c3 := c2;
                        c2 := c;
                        s2 := s;
                        g := c * e[i];
                        h := c * p;
                        r := sqrt(p * p + e[i] * e[i]);
                        e[i + 1] := s * r;
                        s := e[i] / r;
                        c := p / r;
                        p := c * d[i] - s * g;
                        d[i + 1] := h + s * (c * g + s * d[i]);
                        -- rotate eigenvector columns i and i+1
                        continue when v_fast;
                        o := (i - 1) * n;
                        oj := i * n;
                        for k in 1 .. n loop
                            h := vt[oj + k];
                            vt[oj + k] := s * vt[o + k] + c * h;
                            vt[o + k] := c * vt[o + k] - s * h;
                        end loop;
                    end loop;
                    p := -s * s2 * c3 * el1 * e[l] / dl1;
                    e[l] := s * p;
                    d[l] := c * p;
                    exit when abs(e[l]) <= eps * tst1;
                end loop;
            end if;
            d[l] := d[l] + f;
            e[l] := 0;
        end loop;

        -- descending order, eigenvectors as contiguous columns
        select array_agg(t.i order by t.x desc, t.i) into ord
        from unnest(d) with ordinality as t(x, i);
        -- vectors are appended (PL/pgSQL assigns to array slices only from
        -- PostgreSQL 14; Greenplum 7 and PostgreSQL 13 read slices but not write them)
        eigenvalues := array_fill(0::float8, array[n]);
        vectors := case when v_fast then array_fill(0::float8, array[n * n]) else array[]::float8[] end;
        for j in 1 .. n loop
            l := ord[j];
            eigenvalues[j] := d[l];
            if not v_fast then
                vectors := vectors || vt[(l - 1) * n + 1 : l * n];
            end if;
        end loop;
        if not v_fast then
            return;
        end if;
        if v_k is null then
            -- the caller's rule (pca_sparse_train): smallest k whose cumulative
            -- proportion of the trace reaches p_prop, same operations in the same order
            v_tr := 0;
            for i in 1 .. n loop
                v_tr := v_tr + p_a[(i - 1) * n + i];
            end loop;
            v_k := n;
            f := 0;
            for i in 1 .. case when v_tr > 0 then n else 0 end loop
                f := f + eigenvalues[i] / v_tr;
                if f >= p_prop then
                    v_k := i;
                    exit;
                end if;
            end loop;
        end if;
        v_k := least(greatest(v_k, 0), n);
        if v_k = 0 then
            return;
        end if;

        -- groups of wanted eigenvalues closer than 1e-3 |T| (inverse iteration
        -- orthogonalises within a group): one of 16 or more costs more than QL
        -- with vectors, which then runs on the same tridiagonal matrix
        tnorm := 0;
        for i in 1 .. n loop
            tnorm := greatest(tnorm, abs(dd[i]) + case when i > 1 then abs(ee[i]) else 0 end
                                                + case when i < n then abs(ee[i + 1]) else 0 end);
        end loop;
        gstart := 1;
        for jj in 2 .. v_k loop
            if eigenvalues[jj - 1] - eigenvalues[jj] >= 1e-3 * tnorm then
                gstart := jj;
            elsif jj - gstart >= 16 then
                if v_refl then
                    -- Q was not accumulated
                    select t.eigenvalues, t.vectors into eigenvalues, vectors
                    from madlib_compat._symeig_core(p_a, p_n, null, null) t;
                    return;
                end if;
                v_fast := false;
                d := dd;
                e := ee;
                continue ql;
            end if;
        end loop;
        exit;
    end loop;

    -- ------------------------------------ the v_k leading vectors, one by one
    if not tnorm > 1e-150 then
        select t.eigenvalues, t.vectors into eigenvalues, vectors from madlib_compat._symeig_core(p_a, p_n, null, null) t;
        return;
    end if;
    eps3 := eps * tnorm;
    tol := 1000 * n * eps * greatest(abs(eigenvalues[1]), abs(eigenvalues[n]), 1e-300);
    zz := array_fill(0::float8, array[n * v_k]);
    u1 := array_fill(0::float8, array[n]); u2 := u1; u3 := u1; ml := u1;
    pv := array_fill(false, array[n]);
    begin
    for jj in 1 .. v_k loop
        lam := eigenvalues[jj];
        if jj = 1 or lam_prev - lam >= 1e-3 * tnorm then
            gstart := jj;                 -- a new group of close eigenvalues
        elsif jj - gstart >= 16 then
            -- orthogonalising within a large cluster costs more than QL with vectors
            select t.eigenvalues, t.vectors into eigenvalues, vectors from madlib_compat._symeig_core(p_a, p_n, null, null) t;
            return;
        elsif lam > lam_prev - eps3 then
            lam := lam_prev - eps3;       -- perturbed apart: another vector comes out
        end if;
        -- T - lam I = P L U, U with two superdiagonals (u1, u2, u3)
        curd := dd[1] - lam;
        curs := ee[2];
        for i in 1 .. n - 1 loop
            sub := ee[i + 1];
            dg := dd[i + 1] - lam;
            sp := case when i + 1 < n then ee[i + 2] else 0 end;
            if abs(curd) >= abs(sub) then
                if curd = 0 then
                    curd := eps3;
                end if;
                mt := sub / curd;
                u1[i] := curd; u2[i] := curs; u3[i] := 0; pv[i] := false; ml[i] := mt;
                curd := dg - mt * curs;
                curs := sp;
            else
                mt := curd / sub;
                u1[i] := sub; u2[i] := dg; u3[i] := sp; pv[i] := true; ml[i] := mt;
                curd := curs - mt * dg;
                curs := -mt * sp;
            end if;
        end loop;
        u1[n] := case when curd = 0 then eps3 else curd end;
        y := array_fill(eps3, array[n]);
        for it in 1 .. 3 loop
            if it > 1 then
                for i in 1 .. n - 1 loop
                    if pv[i] then
                        h := y[i]; y[i] := y[i + 1]; y[i + 1] := h;
                    end if;
                    y[i + 1] := y[i + 1] - ml[i] * y[i];
                end loop;
            end if;
            y[n] := y[n] / u1[n];
            y[n - 1] := (y[n - 1] - u2[n - 1] * y[n]) / u1[n - 1];
            for i in reverse n - 2 .. 1 loop
                y[i] := (y[i] - u2[i] * y[i + 1] - u3[i] * y[i + 2]) / u1[i];
            end loop;
            for q in gstart .. jj - 1 loop
                o := (q - 1) * n;
                f := 0;
                for i in 1 .. n loop
                    f := f + y[i] * zz[o + i];
                end loop;
                for i in 1 .. n loop
                    y[i] := y[i] - f * zz[o + i];
                end loop;
            end loop;
            nrm := 0;
            for i in 1 .. n loop
                nrm := nrm + y[i] * y[i];
            end loop;
            nrm := sqrt(nrm);
            if not (nrm > 0 and nrm < 'infinity'::float8) then
                select t.eigenvalues, t.vectors into eigenvalues, vectors from madlib_compat._symeig_core(p_a, p_n, null, null) t;
                return;
            end if;
            for i in 1 .. n loop
                y[i] := y[i] / nrm;
            end loop;
        end loop;
        o := (jj - 1) * n;
        for i in 1 .. n loop
            zz[o + i] := y[i];
        end loop;
        lam_prev := lam;

    end loop;

    if v_refl then
        -- x = Q y = R_{n-1} ... R_1 y, R_{i+1} = I - u u'/h on coordinates 0..i
        -- with u = V[0..i][i+1] (column i+1 of the reduced V), as accumulated above
        x := zz;
        for jj in 1 .. v_k loop
            o := (jj - 1) * n;
            for i in 0 .. n - 2 loop
                h := dh[i + 2];
                continue when h = 0;
                g := 0;
                for k in 0 .. i loop
                    g := g + v[k * n + i + 2] * x[o + k + 1];
                end loop;
                g := g / h;
                for k in 0 .. i loop
                    x[o + k + 1] := x[o + k + 1] - g * v[k * n + i + 2];
                end loop;
            end loop;
        end loop;
    else
        -- x = Q y for every vector: a matrix product as v_k aggregates over n^2 rows
        execute format($q$
            with zr as %5$s (
                select j, %1$s from generate_series(1, %2$s) j),
            xq as (
                select s.r, %3$s
                from (select g.r, zr.*, $1[g.r * %2$s + zr.j] as q
                        from generate_series(0, %2$s - 1) g(r) cross join zr offset 0) s
                group by s.r)
            select array_agg(u.x order by u.c, xq.r)
            from xq cross join lateral unnest(array[%4$s]) with ordinality u(x, c) $q$,
            madlib_compat._list(format('$2[(%%1$s - 1) * %s + j] as z%%1$s', n), v_k),
            n,
            madlib_compat._list('sum(s.q * s.z%1$s) as x%1$s', v_k),
            madlib_compat._list('xq.x%1$s', v_k),
            madlib_compat._cte_materialized())
            into x
            using v, zz;
    end if;

    -- the check |A x - lambda x| <= tol for every vector (A x: the same product)
    execute format($q$
        with xr as %5$s (
            select j, %1$s from generate_series(0, %2$s - 1) j),
        ax as (
            select s.r, %3$s
            from (select g.r, xr.*, $1[g.r * %2$s + xr.j + 1] as q
                    from generate_series(0, %2$s - 1) g(r) cross join xr offset 0) s
            group by s.r)
        select coalesce(bool_and(abs(u.d) <= $3), true)
        from ax join xr on xr.j = ax.r
        cross join lateral unnest(array[%4$s]) u(d) $q$,
        madlib_compat._list(format('$2[(%%1$s - 1) * %s + j + 1] as x%%1$s', n), v_k),
        n,
        madlib_compat._list('sum(s.q * s.x%1$s) as a%1$s', v_k),
        madlib_compat._list('ax.a%1$s - $4[%1$s] * xr.x%1$s', v_k),
        madlib_compat._cte_materialized())
        into v_ok
        using p_a, x, tol, eigenvalues;
    if not v_ok then
        select t.eigenvalues, t.vectors into eigenvalues, vectors from madlib_compat._symeig_core(p_a, p_n, null, null) t;
        return;
    end if;
    vectors := x || vectors[n * v_k + 1 : n * n];
    exception when numeric_value_out_of_range or division_by_zero then
        -- float overflow/underflow raise in PostgreSQL: fall back to QL
        select t.eigenvalues, t.vectors into eigenvalues, vectors from madlib_compat._symeig_core(p_a, p_n, null, null) t;
    end;
end
$$;

-- The p_k leading eigenpairs (all eigenvalues).
create or replace function madlib_compat._symeig_top(
    p_a float8[], p_n int, p_k int, out eigenvalues float8[], out vectors float8[])
language sql immutable parallel safe as $$
    select e.eigenvalues, e.vectors from madlib_compat._symeig_core($1, $2, $3, null) e
$$;

-- All eigenvectors.
create or replace function madlib_compat._symeig(
    p_a float8[], p_n int, out eigenvalues float8[], out vectors float8[])
language sql immutable parallel safe as $$
    select e.eigenvalues, e.vectors from madlib_compat._symeig_core($1, $2, null, null) e
$$;

{% endraw %}
{% endmacro %}
