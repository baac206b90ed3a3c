{#-
  madlib_compat.pca_sparse_train: MADlib 2.x signatures, overloads, output tables
  and error messages, computed with SQL + PL/pgSQL only.
-#}
{% macro madlib_compat__pca_train_ddl() %}
{% raw %}
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
    perform madlib_compat._set_if_exists('jit', v_jit);
end
$$;

-- "array[sum(<l>*<r>[1]), ..., sum(<l>*<r>[n])]": the wide aggregate that does
-- n multiply-adds per input tuple. One tuple per non-zero carrying a dense
-- n-vector is ~10x faster in PostgreSQL than n tuples per non-zero through a
-- hash aggregate, and it is still one set-based (MPP-parallel) statement.
create or replace function madlib_compat._wide_sum(p_left text, p_right text, p_n int)
returns text
language sql immutable as $$
    select 'array[' || string_agg(format('sum(%s*%s[%s])', $1, $2, i), ', ' order by i) || ']::float8[]'
    from generate_series(1, $3) as i
$$;

create or replace function madlib_compat.pca_sparse_train(
    source_table         text,
    pc_table             text,
    row_id               text,
    col_id               text,
    val_id               text,
    row_dim              integer,
    col_dim              integer,
    k                    integer,
    grouping_cols        text,
    lanczos_iter         integer,
    use_correlation      boolean,
    result_summary_table text,
    variance             double precision
)
returns void
language plpgsql
set client_min_messages = warning
as $$
declare
    t0 timestamptz := clock_timestamp();
    v_jit text;
    eps constant float8 := 2.220446049250313e-16;
    v_src oid;
    v_srcq text;
    v_r text; v_c text; v_v text;
    v_pc text[]; v_mean text[]; v_sum text[];
    v_pcq text; v_meanq text; v_sumq text;
    v_gcols text[];
    v_gdefs text := '';
    v_gsel text := '';
    v_gjoin text;
    v_src_sql text;
    n int := row_dim;
    m int := col_dim;
    v_wide boolean;
    ns int;
    nb int;
    v_wide_max int;
    v_sql text;
    v_bad bigint;
    v_grp int;
    v_kr float8[];
    v_cs float8[];
    v_g float8[];
    v_rbar float8[];
    v_tbar float8;
    v_total float8;
    v_lam float8[];
    v_u float8[];
    v_tol float8;
    v_nz int;
    v_kg int;
    v_kmax int := 0;
    v_cum float8;
    v_resid float8;
    v_w float8[];
    v_shift float8[];
    v_mu float8;
    v_sig float8[];
    v_cnt bigint;
    v_sq float8[];
    i int; j int; o int;
begin
    -- Our temp tables have no statistics, so the planner's row guesses can
    -- cross the JIT thresholds: compiling then costs far more than running.
    v_jit := madlib_compat._set_if_exists('jit', 'off');

    -- ---------------------------------------------------------------- checks
    -- Same checks, order and wording as MADlib's pca._validate_args.
    v_src := madlib_compat._resolve_relation(source_table);
    if v_src is null then
        raise exception 'PCA error: Source data table % does not exist!', source_table;
    end if;
    v_srcq := v_src::regclass::text;
    if (k is null and variance is null) or k <= 0 or variance <= 0 or variance > 1 then
        raise exception 'PCA error: components_param must be either a positive integer or a float in the range (0.0,1.0]!';
    end if;
    v_pc := madlib_compat._parse_qualified_name(pc_table);
    if v_pc is null then
        raise exception 'PCA error: Invalid output table prefix!';
    end if;
    v_mean := array[v_pc[1], v_pc[2] || '_mean'];
    if madlib_compat._output_exists(v_pc) or madlib_compat._output_exists(v_mean) then
        raise exception 'PCA error: Output table %/%_mean already exist!', pc_table, pc_table;
    end if;
    v_r := madlib_compat._column(v_src, row_id);
    if v_r is null then
        raise exception 'PCA error: % column does not exist in %!', coalesce(row_id, 'NULL'), source_table;
    end if;
    if lanczos_iter < 0 then
        raise exception 'PCA error: lanczos_iter can''t be negative! (Use zero for default value)  The provided value is %', lanczos_iter;
    end if;
    if col_id is null then
        raise exception 'PCA error: Column ID should be provided if value ID is input!';
    end if;
    if val_id is null then
        raise exception 'PCA error: Value ID should be provided if column ID is input!';
    end if;
    v_c := madlib_compat._column(v_src, col_id);
    if v_c is null then
        raise exception 'PCA error: % column does not exist in %!', col_id, source_table;
    end if;
    v_v := madlib_compat._column(v_src, val_id);
    if v_v is null then
        raise exception 'PCA error: % column does not exist in %!', val_id, source_table;
    end if;
    if col_dim is null then
        raise exception 'PCA error: Column dimensions should be provided if using sparse matrices!';
    end if;
    if row_dim is null then
        raise exception 'PCA error: Row dimensions should be provided if using sparse matrices!';
    end if;
    if row_dim <= 0 then
        raise exception 'PCA error: The row dimension must be larger than 0!';
    end if;
    if col_dim <= 0 then
        raise exception 'PCA error: The column dimension must be larger than 0!';
    end if;
    if use_correlation then
        raise exception 'PCA error: Using the correlation matrix is not enabled! This value must be set to FALSE';
    end if;
    if result_summary_table is not null then
        v_sum := madlib_compat._parse_qualified_name(result_summary_table);
        if v_sum is null then
            raise exception 'PCA error: Invalid result summary table name!';
        end if;
        if madlib_compat._output_exists(v_sum) then
            raise exception 'PCA error: Result summary table % already exists!', result_summary_table;
        end if;
    end if;
    v_gcols := madlib_compat._grouping_columns(v_src, grouping_cols);
    if v_gcols is null then
        raise exception 'PCA error: One or more grouping columns in % do not exist!', grouping_cols;
    end if;
    if k > least(row_dim, col_dim) then
        raise exception 'PCA error: k cannot be larger than min(row_dim, col_dim)!';
    end if;

    v_pcq := madlib_compat._quote_qualified_name(v_pc);
    v_meanq := madlib_compat._quote_qualified_name(v_mean);
    if v_sum is not null then
        v_sumq := madlib_compat._quote_qualified_name(v_sum);
    end if;

    -- Gram matrix of the small side: wide data (row_dim <= col_dim) uses the
    -- row_dim x row_dim Gram X Xc^T, tall data the col_dim x col_dim covariance.
    -- "a" indexes the small side, "b" the large one.
    v_wide := n <= m;
    ns := least(n, m);
    nb := greatest(n, m);
    begin
        v_wide_max := coalesce(nullif(current_setting('madlib_compat.gram_wide_max'), '')::int, 300);
    exception when others then
        v_wide_max := 300;
    end;

    -- ------------------------------------------------------------ groups
    drop table if exists pg_temp.__mc_g, pg_temp.__mc_st, pg_temp.__mc_dv, pg_temp.__mc_cs,
        pg_temp.__mc_k, pg_temp.__mc_w, pg_temp.__mc_y, pg_temp.__mc_sg;
    if cardinality(v_gcols) > 0 then
        select string_agg(format('%s %s', quote_ident(a.attname), format_type(a.atttypid, a.atttypmod)), ', ' order by g.ord),
               string_agg('g.' || quote_ident(a.attname), ', ' order by g.ord),
               string_agg(format('s.%1$s = g.%1$s', quote_ident(a.attname)), ' and ' order by g.ord)
          into v_gdefs, v_gsel, v_gjoin
        from unnest(v_gcols) with ordinality as g(col, ord)
        join pg_catalog.pg_attribute a on a.attrelid = v_src and quote_ident(a.attname) = g.col;
        v_gdefs := ', ' || v_gdefs;
        v_gsel := ', ' || v_gsel;
        -- rows whose grouping value is null belong to no group (equality join)
        execute format(
            'create temp table __mc_g as select (row_number() over (order by %1$s))::int as __gid, %1$s
               from (select distinct %1$s from %2$s where %3$s) s',
            array_to_string(v_gcols, ', '), v_srcq,
            (select string_agg(x || ' is not null', ' and ') from unnest(v_gcols) x));
        v_src_sql := format(
            'select g.__gid, s.%s::int4 as a, s.%s::int4 as b, s.%s::float8 as v from %s s join pg_temp.__mc_g g on %s where s.%s is not null',
            case when v_wide then v_r else v_c end, case when v_wide then v_c else v_r end,
            v_v, v_srcq, v_gjoin, v_v);
    else
        create temp table __mc_g as select 1::int as __gid;
        v_src_sql := format(
            'select 1 as __gid, s.%s::int4 as a, s.%s::int4 as b, s.%s::float8 as v from %s s where s.%s is not null',
            case when v_wide then v_r else v_c end, case when v_wide then v_c else v_r end,
            v_v, v_srcq, v_v);
    end if;

    -- ------------------------------------------------- validation of indices
    execute format(
        'select count(*) from (%s) x where a is null or b is null or a < 1 or a > $1 or b < 1 or b > $2',
        v_src_sql) into v_bad using ns, nb;
    if v_bad > 0 then
        raise exception 'Matrix error: Invalid index in matrix (%). All row and column indices must be in the range [1, DIM]', source_table;
    end if;

    -- -------------------------------------------- dense vectors of the small side
    -- one dense ns-vector per row (tall) / column (wide); _scatter rejects duplicates
    execute format(
        'create temp table __mc_dv as
           select __gid, b, madlib_compat._scatter($1, array_agg(a), array_agg(v)) as d, sum(v) as sb
           from (%s) x group by __gid, b', v_src_sql) using ns;
    -- column sums (for the means)
    if v_wide then
        create temp table __mc_cs as select __gid, b as c, sb as s from pg_temp.__mc_dv;
    else
        execute format('create temp table __mc_cs as select __gid, a as c, sum(v) as s from (%s) x group by __gid, a', v_src_sql);
    end if;

    -- ------------------------------------------------------- Gram matrices
    if ns <= v_wide_max then
        execute format(
            'create temp table __mc_k as
               select x.__gid, x.a, %s as kr
               from (%s) x join pg_temp.__mc_dv dv on dv.__gid = x.__gid and dv.b = x.b
               group by x.__gid, x.a',
            madlib_compat._wide_sum('x.v', 'dv.d', ns), v_src_sql);
    else
        -- very large small side: plain sparse self-join (no wide expression)
        execute format(
            'create temp table __mc_k as
               select __gid, a1 as a, madlib_compat._scatter($1, array_agg(a2), array_agg(s)) as kr
               from (select x.__gid, x.a as a1, y.a as a2, sum(x.v * y.v) as s
                     from (%1$s) x join (%1$s) y on x.__gid = y.__gid and x.b = y.b
                     group by 1, 2, 3) p
               group by __gid, a1', v_src_sql) using ns;
    end if;

    create temp table __mc_w (__gid int, a int, w float8[]);
    create temp table __mc_sg (__gid int, kg int, lam float8[], total float8, resid float8,
                               shift float8[], sig float8[], vec float8[]);

    -- --------------------------------------------- per group: small eigenproblem
    for v_grp in select __gid from pg_temp.__mc_g order by __gid loop
        select array(select unnest(q.x)) into v_kr
        from (select array_agg(coalesce(gk.kr, array_fill(0::float8, array[ns])) order by gs.a) as x
              from generate_series(1, ns) gs(a)
              left join pg_temp.__mc_k gk on gk.__gid = v_grp and gk.a = gs.a) q;
        select array_agg(coalesce(cs.s, 0) order by gs.c) into v_cs
        from generate_series(1, m) gs(c)
        left join pg_temp.__mc_cs cs on cs.__gid = v_grp and cs.c = gs.c;

        -- centre: wide G = H K H (H = I - 11'/n); tall C = X'X - s s'/n
        v_g := v_kr;
        if v_wide then
            v_rbar := array_fill(0::float8, array[ns]);
            v_tbar := 0;
            for i in 1 .. ns loop
                o := (i - 1) * ns;
                v_mu := 0;
                for j in 1 .. ns loop
                    v_mu := v_mu + v_kr[o + j];
                end loop;
                v_rbar[i] := v_mu / ns;
                v_tbar := v_tbar + v_mu;
            end loop;
            v_tbar := v_tbar / (ns::float8 * ns);
            for i in 1 .. ns loop
                o := (i - 1) * ns;
                for j in 1 .. ns loop
                    v_g[o + j] := v_kr[o + j] - v_rbar[i] - v_rbar[j] + v_tbar;
                end loop;
            end loop;
        else
            for i in 1 .. ns loop
                o := (i - 1) * ns;
                for j in 1 .. ns loop
                    v_g[o + j] := v_kr[o + j] - v_cs[i] * v_cs[j] / n;
                end loop;
            end loop;
        end if;
        -- total centred sum of squares = trace (MADlib's eigen_sum)
        v_total := 0;
        v_tol := 0;
        for i in 1 .. ns loop
            v_total := v_total + v_g[(i - 1) * ns + i];
            v_tol := greatest(v_tol, v_kr[(i - 1) * ns + i]);
        end loop;

        select e.eigenvalues, e.vectors into v_lam, v_u from madlib_compat._symeig(v_g, ns) e;

        -- Zero singular values. MADlib's SVD keeps only singular values > 0 and
        -- warns when k asks for more ("Outputing only nz instead of k"). An
        -- eigenvalue of a Gram matrix is only known to ~ns*eps*|K|, so "zero"
        -- here means lambda <= 100*ns*eps*max(lambda_1, max diag K): those
        -- components (sigma below ~1e-6 sigma_1) are numerically undetermined,
        -- their vectors arbitrary, and are not emitted.
        v_tol := 100 * ns * eps * greatest(v_lam[1], v_tol);
        v_nz := 0;
        for i in 1 .. ns loop
            exit when v_lam[i] <= v_tol;
            v_nz := i;
        end loop;

        if k is not null then
            if k > v_nz then
                raise warning 'Value of ''k'' is greater than the number of non-zero singular values. Outputing only % instead of % eigen values/vectors', v_nz, k;
            end if;
            v_kg := least(k, v_nz);
        else
            -- smallest k whose cumulative proportion reaches the target
            v_kg := v_nz;
            v_cum := 0;
            for i in 1 .. v_nz loop
                v_cum := v_cum + v_lam[i] / v_total;
                if v_cum >= variance then
                    v_kg := i;
                    exit;
                end if;
            end loop;
            -- MADlib: an explicit lanczos_iter caps the proportion-driven k
            if lanczos_iter > 0 then
                v_kg := least(v_kg, lanczos_iter);
            end if;
        end if;
        v_kmax := greatest(v_kmax, v_kg);

        v_resid := 0;
        for i in v_kg + 1 .. ns loop
            v_resid := v_resid + greatest(v_lam[i], 0);
        end loop;

        if v_kg > 0 then
            if v_wide then
                -- W = H U_k: Xc' U = X' H U, so the set-based product needs no
                -- centring of the sparse data
                v_w := v_u[1 : ns * v_kg];
                for i in 1 .. v_kg loop
                    o := (i - 1) * ns;
                    v_mu := 0;
                    for j in 1 .. ns loop
                        v_mu := v_mu + v_w[o + j];
                    end loop;
                    v_mu := v_mu / ns;
                    for j in 1 .. ns loop
                        v_w[o + j] := v_w[o + j] - v_mu;
                    end loop;
                end loop;
                v_shift := null;
            else
                -- components are the eigenvectors; shift_i = mean . v_i
                v_w := v_u[1 : ns * v_kg];
                v_shift := array_fill(0::float8, array[v_kg]);
                for i in 1 .. v_kg loop
                    o := (i - 1) * ns;
                    v_mu := 0;
                    for j in 1 .. ns loop
                        v_mu := v_mu + v_cs[j] * v_w[o + j];
                    end loop;
                    v_shift[i] := v_mu / n;
                end loop;
            end if;
            -- rows a = 1..ns of the ns x k matrix, for the set-based product
            insert into pg_temp.__mc_w
            select v_grp, gs.a, array(select v_w[(c.i - 1) * ns + gs.a] from generate_series(1, v_kg) c(i) order by c.i)
            from generate_series(1, ns) gs(a);
        end if;
        insert into pg_temp.__mc_sg values
            (v_grp, v_kg, v_lam, v_total, v_resid, v_shift, null,
             case when v_wide or v_kg = 0 then null else v_w end);
    end loop;

    -- ------------------------------------------------ set-based projection
    -- wide: Y = X' W (col_dim x k); tall: Z = X V (row_dim x k).
    if v_kmax > 0 then
        execute format(
            'create temp table __mc_y as
               select x.__gid, x.b, %s as y
               from (%s) x join pg_temp.__mc_w w on w.__gid = x.__gid and w.a = x.a
               group by x.__gid, x.b',
            madlib_compat._wide_sum('x.v', 'w.w', v_kmax), v_src_sql);
        -- Singular values recomputed from the product (sigma_i = |Xc v_i|):
        -- more accurate for small components than sqrt(eigenvalue of the Gram).
        if v_wide then
            execute format(
                'update pg_temp.__mc_sg sg set sig = q.sig
                   from (select __gid, array[%s]::float8[] as sig from pg_temp.__mc_y group by __gid) q
                  where q.__gid = sg.__gid',
                (select string_agg(format('sqrt(sum(y[%s]*y[%s]))', ix, ix), ', ' order by ix)
                 from generate_series(1, v_kmax) ix));
        else
            for v_grp, v_kg, v_shift in
                select __gid, kg, shift from pg_temp.__mc_sg where kg > 0 order by __gid
            loop
                execute format(
                    'select count(*), array[%s]::float8[] from pg_temp.__mc_y where __gid = $1',
                    (select string_agg(format('sum((y[%1$s]-$2[%1$s])*(y[%1$s]-$2[%1$s]))', ix), ', ' order by ix)
                     from generate_series(1, v_kg) ix))
                    into v_cnt, v_sq using v_grp, v_shift;
                v_sig := array_fill(0::float8, array[v_kg]);
                for i in 1 .. v_kg loop
                    -- rows without any non-zero contribute (0 - shift)^2
                    v_sig[i] := sqrt(coalesce(v_sq[i], 0) + (n - v_cnt) * v_shift[i] * v_shift[i]);
                end loop;
                update pg_temp.__mc_sg set sig = v_sig where __gid = v_grp;
            end loop;
        end if;
    end if;

    -- ------------------------------------------------------------ outputs
    -- Created last, inside this one function call (= one transaction): a
    -- failure anywhere leaves no output table behind.
    execute format(
        'create table %s (row_id integer, principal_components double precision[],
                          std_dev double precision, proportion double precision%s)',
        v_pcq, v_gdefs);
    execute format('create table %s (column_mean double precision[]%s)', v_meanq, v_gdefs);

    if v_kmax > 0 then
        if v_wide then
            -- one sort per group builds the col_dim x k matrix; component i is
            -- then its i-th column (an array_agg(... order by) per component
            -- would sort col_dim rows k times)
            execute format(
                'insert into %s
                 select t.i,
                        array(select u.x / sg.sig[t.i]
                              from unnest(q.yy[1:$1][t.i:t.i]) with ordinality u(x, o) order by u.o),
                        sg.sig[t.i] / sqrt($2 - 1), sg.sig[t.i] * sg.sig[t.i] / sg.total %s
                 from (select x.__gid, array_agg(coalesce(y.y, $3) order by x.c) as yy
                       from (select sg.__gid, gs.c
                             from pg_temp.__mc_sg sg cross join generate_series(1, $1) gs(c)
                             where sg.kg > 0) x
                       left join pg_temp.__mc_y y on y.__gid = x.__gid and y.b = x.c
                       group by x.__gid) q
                 join pg_temp.__mc_sg sg on sg.__gid = q.__gid
                 join pg_temp.__mc_g g on g.__gid = q.__gid
                 cross join lateral generate_series(1, sg.kg) t(i)
                 order by q.__gid, t.i',
                v_pcq, v_gsel)
                using m, n, array_fill(0::float8, array[v_kmax]);
        else
            execute format(
                'insert into %s
                 select t.i, sg.vec[(t.i - 1) * $1 + 1 : t.i * $1], sg.sig[t.i] / sqrt($2 - 1),
                        sg.sig[t.i] * sg.sig[t.i] / sg.total %s
                 from pg_temp.__mc_sg sg
                 join pg_temp.__mc_g g on g.__gid = sg.__gid
                 cross join lateral generate_series(1, sg.kg) t(i)
                 order by sg.__gid, t.i',
                v_pcq, v_gsel)
                using m, n;
        end if;
    end if;

    execute format(
        'insert into %s
         select q.cm %s
         from (select gg.__gid, array_agg(coalesce(cs.s, 0) / $2 order by gs.c) as cm
               from pg_temp.__mc_g gg cross join generate_series(1, $1) gs(c)
               left join pg_temp.__mc_cs cs on cs.__gid = gg.__gid and cs.c = gs.c
               group by gg.__gid) q
         join pg_temp.__mc_g g on g.__gid = q.__gid
         order by q.__gid',
        v_meanq, v_gsel)
        using m, n::float8;

    if v_sumq is not null then
        execute format(
            'create table %s (rows_used integer, "exec_time (ms)" numeric, iter integer,
                              recon_error double precision, relative_recon_error double precision,
                              use_correlation boolean%s)',
            v_sumq, v_gdefs);
        -- MADlib's SVD summary: RMS error of the rank-k reconstruction of the
        -- centred matrix, and its norm relative to the centred matrix.
        execute format(
            'insert into %s
             select $1, round(($2)::numeric, 3), sg.kg, sqrt(sg.resid / ($1::float8 * $3)),
                    case when sg.total > 0 then sqrt(sg.resid / sg.total) else 0 end, false %s
             from pg_temp.__mc_sg sg join pg_temp.__mc_g g on g.__gid = sg.__gid
             order by sg.__gid',
            v_sumq, v_gsel)
            using n, extract(epoch from clock_timestamp() - t0) * 1000, m;
    end if;

    drop table if exists pg_temp.__mc_g, pg_temp.__mc_st, pg_temp.__mc_dv, pg_temp.__mc_cs,
        pg_temp.__mc_k, pg_temp.__mc_w, pg_temp.__mc_y, pg_temp.__mc_sg;
end
$$;

-- ------------------------------------------------------------- overloads
-- Integer components_param = number of components, float = proportion of
-- variance (so 1 returns one component and 1.0 all of them), as in MADlib.
create or replace function madlib_compat.pca_sparse_train(
    source_table text, pc_table text, row_id text, col_id text, val_id text,
    row_dim integer, col_dim integer, k integer, grouping_cols text,
    lanczos_iter integer, use_correlation boolean, result_summary_table text)
returns void language sql as $$
    select madlib_compat.pca_sparse_train($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, null::double precision)
$$;

create or replace function madlib_compat.pca_sparse_train(
    source_table text, pc_table text, row_id text, col_id text, val_id text,
    row_dim integer, col_dim integer, k integer, grouping_cols text,
    lanczos_iter integer, use_correlation boolean)
returns void language sql as $$
    select madlib_compat.pca_sparse_train($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, null::text, null::double precision)
$$;

create or replace function madlib_compat.pca_sparse_train(
    source_table text, pc_table text, row_id text, col_id text, val_id text,
    row_dim integer, col_dim integer, k integer, grouping_cols text,
    lanczos_iter integer)
returns void language sql as $$
    select madlib_compat.pca_sparse_train($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, false, null::text, null::double precision)
$$;

create or replace function madlib_compat.pca_sparse_train(
    source_table text, pc_table text, row_id text, col_id text, val_id text,
    row_dim integer, col_dim integer, k integer, grouping_cols text)
returns void language sql as $$
    select madlib_compat.pca_sparse_train($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, false, null::text, null::double precision)
$$;

create or replace function madlib_compat.pca_sparse_train(
    source_table text, pc_table text, row_id text, col_id text, val_id text,
    row_dim integer, col_dim integer, k integer)
returns void language sql as $$
    select madlib_compat.pca_sparse_train($1, $2, $3, $4, $5, $6, $7, $8, null::text, 0, false, null::text, null::double precision)
$$;

create or replace function madlib_compat.pca_sparse_train(
    source_table text, pc_table text, row_id text, col_id text, val_id text,
    row_dim integer, col_dim integer, variance double precision, grouping_cols text,
    lanczos_iter integer, use_correlation boolean, result_summary_table text)
returns void language sql as $$
    select madlib_compat.pca_sparse_train($1, $2, $3, $4, $5, $6, $7, null::integer, $9, $10, $11, $12, $8)
$$;

create or replace function madlib_compat.pca_sparse_train(
    source_table text, pc_table text, row_id text, col_id text, val_id text,
    row_dim integer, col_dim integer, variance double precision, grouping_cols text,
    lanczos_iter integer, use_correlation boolean)
returns void language sql as $$
    select madlib_compat.pca_sparse_train($1, $2, $3, $4, $5, $6, $7, null::integer, $9, $10, $11, null::text, $8)
$$;

create or replace function madlib_compat.pca_sparse_train(
    source_table text, pc_table text, row_id text, col_id text, val_id text,
    row_dim integer, col_dim integer, variance double precision, grouping_cols text,
    lanczos_iter integer)
returns void language sql as $$
    select madlib_compat.pca_sparse_train($1, $2, $3, $4, $5, $6, $7, null::integer, $9, $10, false, null::text, $8)
$$;

create or replace function madlib_compat.pca_sparse_train(
    source_table text, pc_table text, row_id text, col_id text, val_id text,
    row_dim integer, col_dim integer, variance double precision, grouping_cols text)
returns void language sql as $$
    select madlib_compat.pca_sparse_train($1, $2, $3, $4, $5, $6, $7, null::integer, $9, 0, false, null::text, $8)
$$;

create or replace function madlib_compat.pca_sparse_train(
    source_table text, pc_table text, row_id text, col_id text, val_id text,
    row_dim integer, col_dim integer, variance double precision)
returns void language sql as $$
    select madlib_compat.pca_sparse_train($1, $2, $3, $4, $5, $6, $7, null::integer, null::text, 0, false, null::text, $8)
$$;

-- ------------------------------------------------------------- help
create or replace function madlib_compat.pca_sparse_train(usage_string varchar)
returns text language plpgsql immutable as $$
begin
    if lower(coalesce(usage_string, '')) in ('usage', 'help', '?') then
        return '
-----------------------------------------------------------------------
                            USAGE
-----------------------------------------------------------------------
SELECT madlib_compat.pca_sparse_train(
    source_table        -- TEXT,    Name of data table
    pc_table            -- TEXT,    Name of the table containing the principal components
    row_id              -- TEXT,    Column name for the row coordinates.
    col_id              -- TEXT,    Column name for the column coordinates.
    val_id              -- TEXT,    Column name for the sparse values.
    row_dim,            -- INTEGER, The number of rows in the sparse matrix
    col_dim,            -- INTEGER, The number of columns in the sparse matrix
    components_param    -- INTEGER OR FLOAT, number of components or target proportion of variance
    grouping_cols       -- TEXT,    Comma-separated list of grouping columns (Default: NULL)
    lanczos_iter        -- INTEGER, Accepted for compatibility; caps k when a proportion is given (Default: 0)
    use_correlation     -- BOOLEAN, Must be FALSE (Default: False)
    rslt_summary_table  -- TEXT,    Table name to store summary of results (Default: NULL)
);
Output: pc_table(row_id, principal_components, std_dev, proportion[, grouping cols]),
        pc_table_mean(column_mean[, grouping cols]) and the optional summary table
        (rows_used, "exec_time (ms)", iter, recon_error, relative_recon_error, use_correlation).
';
    end if;
    return '
----------------------------------------------------------------
         Summary: Sparse PCA Training (madlib_compat)
----------------------------------------------------------------
MADlib-compatible principal component analysis computed with SQL and PL/pgSQL.
For an overview on usage, run:
SELECT madlib_compat.pca_sparse_train(''usage'');
';
end
$$;

create or replace function madlib_compat.pca_sparse_train()
returns text language sql immutable as $$
    select madlib_compat.pca_sparse_train(''::varchar)
$$;
{% endraw %}
{% endmacro %}
