{#-
  madlib_compat.pca_sparse_train's implementation (MADlib's pca.py_in): _pca_train runs the
  steps below, each its own function. The interface (signatures, overloads, help) is pca.sql;
  the checks are pca_validate.sql; the eigen-decomposition is linalg.sql.
-#}
{% macro madlib_compat__pca_train_ddl() %}
{% raw %}
-- How the statements below are built: "x" is the sparse input as
-- (__gid, a, b, v) with a indexing the small side of the matrix (rows when
-- row_dim <= col_dim, "wide"; columns otherwise, "tall") and b the large side.
--   1. One statement reads the input once and returns, per group, the
--      uncentred Gram matrix K of the small side (ns x ns), the sums the means
--      need and the validation counts. K = sum over non-zeros (a, b, v) of
--      v * d_b, where d_b is column b of the small side as ns separate
--      nullable columns: zeros are NULL, so the strict sum/product skip them
--      and the work is ~ nnz * ns * density rather than nnz * ns.
--   2. Per group, the ns x ns eigenproblem in PL/pgSQL (_symeig_core), only
--      the eigenvectors that will be used.
--   3. One statement for the large side: Y = X' W (wide: the components) or
--      Z = X V (tall: the singular values), W passed as parameters.
-- No temporary table (catalog churn, no statistics) except the group list
-- when grouping columns are given; nothing is detoasted per row.

-- The groups (grouping columns, in a temp table with statistics, rows whose grouping value is
-- null belong to no group) and the input as (__gid, a, b, v) with a on the small side.
create or replace function madlib_compat._pca_train_groups(
    p_src oid, p_srcq text, p_gcols text[], p_wide boolean, p_r text, p_c text, p_v text, p_ns int, p_nb int,
    out v_grouped boolean, out v_gdefs text, out v_gsel text, out v_gfrom text,
    out v_groups_sql text, out v_src_sql text)
language plpgsql as $$
declare
    v_src oid := p_src; v_srcq text := p_srcq; v_gcols text[] := p_gcols; v_wide boolean := p_wide;
    v_r text := p_r; v_c text := p_c; v_v text := p_v; ns int := p_ns; nb int := p_nb;
    v_gjoin text;
    i int;
begin
    v_gdefs := '';
    v_gsel := '';
    v_gfrom := '';
    v_grouped := cardinality(v_gcols) > 0;
    drop table if exists pg_temp.__mc_g;
    if v_grouped then
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
        -- statistics: without them the planner takes the group list for thousands
        -- of rows and hashes the whole input to join it instead of the list
        analyze pg_temp.__mc_g;
        -- the per-(group, column) aggregation below keeps ns + 4 sums for every
        -- group and column in one hash table: room for it (up to 256 MB) instead
        -- of spilling it to disk in batches
        select count(*) into i from pg_temp.__mc_g;
        perform madlib_compat._raise_work_mem(
            least(262144, greatest(65536, (i::bigint * nb * (ns + 8) * 20 / 1024)::int)));
        v_groups_sql := 'select __gid from pg_temp.__mc_g';
        v_gfrom := ' join pg_temp.__mc_g g on g.__gid = q.__gid';
        v_src_sql := format(
            'select g.__gid, s.%s::int4 as a, s.%s::int4 as b, s.%s::float8 as v from %s s join pg_temp.__mc_g g on %s where s.%s is not null',
            case when v_wide then v_r else v_c end, case when v_wide then v_c else v_r end,
            v_v, v_srcq, v_gjoin, v_v);
    else
        v_groups_sql := 'select 1 as __gid';
        v_src_sql := format(
            'select 1 as __gid, s.%s::int4 as a, s.%s::int4 as b, s.%s::float8 as v from %s s where s.%s is not null',
            case when v_wide then v_r else v_c end, case when v_wide then v_c else v_r end,
            v_v, v_srcq, v_v);
    end if;
end
$$;

-- dc, the input per b as ns nullable columns, for the Gram statement (see _pca_gram_sql).
create or replace function madlib_compat._pca_gram_columns_sql(v_form text, ns int)
returns text
language plpgsql stable as $$
begin
    return case when v_form = 'outer' then format(
        'dc as ' || madlib_compat._cte_materialized() || ' (
            select __gid, b, %s, sum(v) as s,
                   count(*) filter (where a is null or a < 1 or a > %s) as bad,
                   count(*) filter (where a between 1 and %2$s) = %s as ok
            from x group by __gid, b)',
        madlib_compat._list('sum(v) filter (where a = %1$s) as c%1$s', ns), ns,
        (select string_agg(format('num_nonnulls(%s)', l), ' + ')
           from (select string_agg(format('sum(v) filter (where a = %s)', gp.p), ', ' order by gp.p) as l
                   from generate_series(1, ns) gp(p) group by (gp.p - 1) / 90) z))
    else format(
        'dv as ' || madlib_compat._cte_materialized() || ' (
            select __gid, b, madlib_compat._dense(%1$s, array_agg(a), array_agg(v)) as d, sum(v) as s,
                   count(*) filter (where a is null or a < 1 or a > %1$s) as bad
            from x group by __gid, b),
         dc as ' || madlib_compat._cte_materialized() || ' (select __gid, b, d is not null as ok, s, bad, %2$s from dv)',
        ns, case when v_form = 'long' then 'null::float8 as c0'
                 else madlib_compat._list('nullif(d[%1$s], 0) as c%1$s', ns) end) end;
end
$$;

-- The 'outer' form of K: the upper triangle (then, tall, the column sums) in chunks of 256
-- aggregates, one scan of dc each: the planner compares every aggregate with all the others
-- of its query level, so 1830 in one level cost more to plan than to run. Chunks are padded
-- to one length and stacked as a 2-D array.
create or replace function madlib_compat._pca_gram_outer_sql(ns int, v_wide boolean, v_grouped boolean)
returns text
language plpgsql stable as $$
begin
    return format(
        'kq as (select __gid, array_agg(arr order by blk) as ku from (%s) kb group by __gid)',
        -- one group: a plain aggregate per chunk (grouping by the
        -- constant id would sort dc's wide rows once per chunk)
        (select string_agg(format(case when v_grouped
                                       then 'select __gid, %s as blk, array[%s]::float8[] as arr from dc group by __gid'
                                       else 'select 1 as __gid, %s as blk, array[%s]::float8[] as arr from dc having count(*) > 0' end,
                                  c.blk, c.ex), ' union all ' order by c.blk)
         from (select e.q / 256 as blk, string_agg(e.ex, ', ' order by e.q) as ex
               from (select (gi.i - 1) * ns - (gi.i - 1) * (gi.i - 2) / 2 + gj.j - gi.i as q,
                            format('sum(c%s * c%s)', gi.i, gj.j) as ex
                       from generate_series(1, ns) gi(i), generate_series(1, ns) gj(j) where gi.i <= gj.j
                     union all
                     select ns * (ns + 1) / 2 + gi.i - 1, format('sum(c%s)', gi.i)
                       from generate_series(1, ns) gi(i) where not v_wide
                     union all
                     select p.q, 'null::float8'
                       from generate_series(ns * (ns + 1) / 2 + case when v_wide then 0 else ns end,
                                            ((ns * (ns + 1) / 2 + case when v_wide then 0 else ns end + 255) / 256) * 256 - 1) p(q)
                    ) e
               group by 1) c));
end
$$;

-- Which form of K the Gram statement builds for a small side of ns (see _pca_gram_sql):
-- settings madlib_compat.gram_outer_max (default 100) and gram_wide_max (default 300).
create or replace function madlib_compat._pca_gram_form(ns int)
returns text
language plpgsql stable as $$
declare
    v_wide_max int;
    v_outer_max int;
begin
    begin
        v_wide_max := coalesce(nullif(current_setting('madlib_compat.gram_wide_max'), '')::int, 300);
    exception when others then
        v_wide_max := 300;
    end;
    begin
        v_outer_max := coalesce(nullif(current_setting('madlib_compat.gram_outer_max'), '')::int, 100);
    exception when others then
        v_outer_max := 100;
    end;
    return case when ns <= least(v_outer_max, v_wide_max) then 'outer'
                when ns <= v_wide_max then 'join' else 'long' end;
end
$$;

-- The Gram statement: one read of the input giving, per group, K of the small side (row ids
-- and rows, or the upper triangle), the sums the means need and the validation counts.
-- K comes in one of three forms (p_form):
--   outer: ns <= gram_outer_max: upper triangle sum over b of d_b d_b' as
--     ns(ns+1)/2 aggregates over the col_dim rows of dc (no join at all);
--   join:  ns <= gram_wide_max:  rows a of K as ns aggregates over the non-zeros joined with dc;
--   long:  larger: the non-zeros joined with themselves on b.
create or replace function madlib_compat._pca_gram_sql(
    v_form text, v_src_sql text, v_groups_sql text, v_grouped boolean, v_wide boolean, ns int, nb int, m int)
returns text
language plpgsql stable as $$
declare
    v_sql text;
begin
    v_sql := format($q$
        with x as %1$s (%2$s),
        %5$s,
        st as (
            select __gid, coalesce(sum(bad), 0) + count(*) filter (where b is null or b < 1 or b > %4$s) as bad,
                   count(*) filter (where not ok) as dup
            from dc group by __gid),
        %6$s
        %7$s
        select gg.__gid, %8$s, %9$s,
               coalesce(sum(st.bad) over (), 0), coalesce(sum(st.dup) over (), 0)
        from (%10$s) gg
        left join st on %11$s
        %12$s
        order by gg.__gid $q$,
        case when v_form = 'outer' then '' else madlib_compat._cte_materialized() end,
        v_src_sql, ns, nb,
        -- dc: per b, column b of the small side as ns nullable columns c1..; ok:
        -- no position given twice. Small ns: one filtered sum per position (no
        -- function call per b; a count against the non-null columns finds
        -- duplicates). Larger: _dense builds the vector (null when a position
        -- repeats), then the columns.
        madlib_compat._pca_gram_columns_sql(v_form, ns),
        -- wide: the col_dim column sums (the means), zero where a column has
        -- no non-zero, scattered set-based (a PL/pgSQL loop over col_dim
        -- positions cost ~3 % of a call)
        case when v_wide then format(
            'cm as (
                select gg.__gid, array_agg(coalesce(d.s, 0) order by p.b) as cs
                from (%s) gg
                cross join generate_series(1, %s) p(b)
                left join dc d on d.b = p.b%s
                group by gg.__gid),',
            v_groups_sql, m, case when v_grouped then ' and d.__gid = gg.__gid' end)
             else '' end,
        case v_form
            when 'outer' then madlib_compat._pca_gram_outer_sql(ns, v_wide, v_grouped)
            when 'join' then format(
                'kk as (select x.__gid, x.a, array_replace(array[%s], null, 0::float8) as kr
                          from x join dc c on c.b = x.b%s
                         group by x.__gid, x.a),
                 kf as (select __gid, array_agg(a order by a) as ka,
                               array(select e from unnest(array_agg(kr order by a)) e) as kf
                          from kk group by __gid),
                 ks as (select __gid, array_agg(a) as ka, array_agg(s) as sa
                          from (select __gid, a, sum(v) as s from x group by 1, 2) z group by __gid)',
                madlib_compat._list('sum(x.v * c.c%1$s)', ns),
                case when v_grouped then ' and c.__gid = x.__gid' end)
            else format(
                'kk as (select p.__gid, p.a1 as a, madlib_compat._dense(%1$s, array_agg(p.a2), array_agg(p.s)) as kr
                          from (select x.__gid, x.a as a1, y.a as a2, sum(x.v * y.v) as s
                                  from x join x y on x.b = y.b and x.__gid = y.__gid
                                 where x.a between 1 and %1$s and y.a between 1 and %1$s
                                 group by 1, 2, 3) p
                         group by p.__gid, p.a1),
                 kf as (select __gid, array_agg(a order by a) as ka,
                               array(select e from unnest(array_agg(kr order by a)) e) as kf
                          from kk group by __gid),
                 ks as (select __gid, array_agg(a) as ka, array_agg(s) as sa
                          from (select __gid, a, sum(v) as s from x group by 1, 2) z group by __gid)', ns)
        end,
        -- K: (row ids, rows) or upper triangle
        case when v_form = 'outer' then format('null::int[], case when kq.ku is not null then (array(select unnest(kq.ku)))[1:%s] end', ns * (ns + 1) / 2)
             else 'kf.ka, kf.kf' end,
        -- sums over the small side (tall: the column sums)
        case when v_wide then 'cm.cs'
             when v_form = 'outer' then format('case when kq.ku is not null then (array(select unnest(kq.ku)))[%s:%s] end', ns * (ns + 1) / 2 + 1, ns * (ns + 1) / 2 + ns)
             else 'madlib_compat._dense(' || ns || ', ks.ka, ks.sa)' end,
        v_groups_sql,
        -- one group: no join on the constant group id, whose derived filters
        -- would hide the input sizes from the planner
        case when v_grouped then 'st.__gid = gg.__gid' else 'true' end,
        case when v_form = 'outer' then
            format('left join kq on %s', case when v_grouped then 'kq.__gid = gg.__gid' else 'true' end)
        else
            format('left join kf on %1$s left join ks on %2$s',
                   case when v_grouped then 'kf.__gid = gg.__gid' else 'true' end,
                   case when v_grouped then 'ks.__gid = gg.__gid' else 'true' end)
        end
        || case when v_wide then
               format(' left join cm on %s', case when v_grouped then 'cm.__gid = gg.__gid' else 'true' end)
           else '' end);
    return v_sql;
end
$$;

-- A group's centred Gram matrix g (row-major ns x ns), from K as the Gram statement gave it
-- (p_form outer: the upper triangle; else the rows p_ka, others 0) and, tall, the column sums
-- p_cs: wide G = H K H (H = I - 11'/n), tall C = X'X - s s'/n. total: its trace, the centred
-- sum of squares (MADlib's eigen_sum); maxdiag: K's largest diagonal entry (the scale of
-- rounding in the eigenvalues).
create or replace function madlib_compat._pca_centred_gram(
    v_form text, v_ka int[], v_kf float8[], v_cs float8[], v_wide boolean, ns int, n int,
    out v_g float8[], out v_total float8, out v_tol float8)
language plpgsql immutable as $$
declare
    v_kr float8[];
    v_rbar float8[];
    v_tbar float8;
    v_mu float8;
    i int; j int; o int; q int; t int;
begin
    -- K, dense row-major (rows without any non-zero are 0)
    if v_form = 'outer' then
        v_kr := array_fill(0::float8, array[ns * ns]);
        if v_kf is not null then
            q := 0;
            for i in 1 .. ns loop
                o := (i - 1) * ns;
                for j in i .. ns loop
                    q := q + 1;
                    v_mu := coalesce(v_kf[q], 0);
                    v_kr[o + j] := v_mu;
                    v_kr[(j - 1) * ns + i] := v_mu;
                end loop;
            end loop;
        end if;
    elsif coalesce(cardinality(v_ka), 0) = ns then
        v_kr := v_kf;
    else
        v_kr := array_fill(0::float8, array[ns * ns]);
        for t in 1 .. coalesce(cardinality(v_ka), 0) loop
            o := (v_ka[t] - 1) * ns;
            q := (t - 1) * ns;
            for j in 1 .. ns loop
                v_kr[o + j] := v_kf[q + j];
            end loop;
        end loop;
    end if;

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
end
$$;

-- How many components a group keeps: k of them, or the fewest whose proportion of the
-- variance reaches p_variance (capped by an explicit lanczos_iter, as MADlib does), never
-- more than the non-zero ones; resid: the variance the kept ones leave out.
-- Zero singular values: MADlib's SVD keeps only singular values > 0 and warns when k asks
-- for more. An eigenvalue of a Gram matrix is only known to ~ns*eps*|K|, so "zero" here
-- means lambda <= 100*ns*eps*max(lambda_1, max diag K): those components (sigma below ~1e-6
-- sigma_1) are numerically undetermined, their vectors arbitrary, and are not emitted.
create or replace function madlib_compat._pca_components_kept(
    p_lam float8[], p_total float8, p_maxdiag float8, p_k int, p_variance float8,
    p_lanczos_iter int, p_ns int, p_source_table text, out kg int, out resid float8)
language plpgsql immutable as $$
declare
    eps constant float8 := 2.220446049250313e-16;
    v_tol float8 := 100 * p_ns * eps * greatest(p_lam[1], p_maxdiag);
    v_nz int := 0;
    i int;
begin
    for i in 1 .. p_ns loop
        exit when p_lam[i] <= v_tol;
        v_nz := i;
    end loop;
    if v_nz = 0 then
        -- no variance at all (no entries, or every row the same): MADlib fails here
        -- dividing by the zero total variance; same SQLSTATE, a message that says why
        raise exception using errcode = 'division_by_zero',
            message = format('PCA error: the centred matrix in %s has no variance (no entries, or all rows equal): no principal component', p_source_table);
    end if;
    if p_k is not null then
        if p_k > v_nz then
            raise warning 'Value of ''k'' is greater than the number of non-zero singular values. Outputing only % instead of % eigen values/vectors', v_nz, p_k;
        end if;
        kg := least(p_k, v_nz);
    else
        kg := madlib_compat._proportion_count(p_lam, p_total, p_variance, v_nz);
        if p_lanczos_iter > 0 then
            kg := least(kg, p_lanczos_iter);
        end if;
    end if;
    -- eigenvalues below the tolerance are zeros (summing their rounding noise gave ~1e-8
    -- instead of 0 when k = the rank)
    resid := 0;
    for i in kg + 1 .. v_nz loop
        resid := resid + greatest(p_lam[i], 0);
    end loop;
end
$$;

-- What the large-side product needs from a group's kg leading eigenvectors p_u of p_g:
-- wide, W = H U_k (Xc' U = X' H U, so the product needs no centring of the sparse data);
-- tall, the components themselves and shift_i = mean . v_i.
create or replace function madlib_compat._pca_weights(
    p_g float8[], p_u float8[], p_kg int, p_by_proportion boolean, p_cs float8[], p_wide boolean,
    p_ns int, p_n int, out w float8[], out shift float8[])
language plpgsql immutable as $$
declare
    ns int := p_ns;
    v_u float8[] := p_u;
    v_mu float8;
    i int; j int; o int;
begin
    if p_kg > 0 and p_by_proportion then
        -- the proportion rule is the one _symeig_core applied; should rounding ever
        -- make it ask for one vector more, compute them again
        v_mu := 0;
        for j in 1 .. ns loop
            v_mu := v_mu + v_u[(p_kg - 1) * ns + j] * v_u[(p_kg - 1) * ns + j];
        end loop;
        if not v_mu > 0.5 then
            select e.vectors into v_u from madlib_compat._symeig_core(p_g, ns, p_kg, null) e;
        end if;
    end if;
    w := v_u[1 : ns * p_kg];
    shift := array[]::float8[];
    if p_kg = 0 then
        return;
    end if;
    if p_wide then
        for i in 1 .. p_kg loop
            o := (i - 1) * ns;
            v_mu := 0;
            for j in 1 .. ns loop
                v_mu := v_mu + w[o + j];
            end loop;
            v_mu := v_mu / ns;
            for j in 1 .. ns loop
                w[o + j] := w[o + j] - v_mu;
            end loop;
        end loop;
    else
        shift := array_fill(0::float8, array[p_kg]);
        for i in 1 .. p_kg loop
            o := (i - 1) * ns;
            v_mu := 0;
            for j in 1 .. ns loop
                v_mu := v_mu + p_cs[j] * w[o + j];
            end loop;
            shift[i] := v_mu / p_n;
        end loop;
    end if;
end
$$;

-- The output tables pc_table and pc_table_mean (with the grouping columns' definitions).
-- col_dim-long arrays stored as they are: compressing random doubles costs more than it
-- saves (and every later read pays to decompress).
create or replace function madlib_compat._pca_train_create_outputs(
    p_pcq text, p_meanq text, p_gdefs text, p_external boolean)
returns void
language plpgsql as $$
begin
    execute format(
        'create table %s (row_id integer, principal_components double precision[],
                          std_dev double precision, proportion double precision%s)',
        p_pcq, p_gdefs);
    execute format('create table %s (column_mean double precision[]%s)', p_meanq, p_gdefs);
    if p_external then
        execute format('alter table %s alter column principal_components set storage external', p_pcq);
        execute format('alter table %s alter column column_mean set storage external', p_meanq);
    end if;
end
$$;

-- The parameters of the large-side product: the ng groups' ns x kmax matrices W (and, tall,
-- the shifts), zero padded, row-major, one row (group id, a) each. g_wall/g_woff: every
-- group's W appended (column-major ns x kg) and where each starts; likewise g_shall/g_shoff.
create or replace function madlib_compat._pca_train_pack(
    ng int, ns int, v_kmax int, v_wide boolean, g_id int[], g_kg int[],
    g_wall float8[], g_woff int[], g_shall float8[], g_shoff int[],
    out p_gid int[], out p_a int[], out p_w float8[], out p_sh float8[])
language plpgsql immutable as $$
declare
    i int; j int; o int; q int;
begin
    p_gid := array[]::int[];
    p_a := array[]::int[];
    p_w := array_fill(0::float8, array[ng * ns * v_kmax]);
    p_sh := array_fill(0::float8, array[ng * v_kmax]);
    for q in 1 .. ng loop
        for j in 1 .. ns loop
            p_gid := p_gid || g_id[q];
            p_a := p_a || j;
            o := ((q - 1) * ns + j - 1) * v_kmax;
            for i in 1 .. g_kg[q] loop
                p_w[o + i] := g_wall[g_woff[q] + (i - 1) * ns + j];
            end loop;
        end loop;
        if not v_wide then
            for i in 1 .. g_kg[q] loop
                p_sh[(q - 1) * v_kmax + i] := g_shall[g_shoff[q] + i];
            end loop;
        end if;
    end loop;
end
$$;

-- The large-side product, the bulk of the work: wide Y = X' W (col_dim x k), tall Z = X V
-- (row_dim x k), per group; rows come back as arrays (group ids, b, and a 2-D array of the k
-- sums per row).
create or replace function madlib_compat._pca_train_product(
    v_src_sql text, v_grouped boolean, v_kmax int, p_gid int[], p_a int[], p_w float8[],
    out yg int[], out yb int[], out yy float8[])
language plpgsql as $$
declare
    v_par text;
    v_minpar text;
    v_sql text;
begin
    -- Parallel workers for the product are opt-in: an hour of the nightly
    -- job is a few MB, under the server's 8MB threshold, and its hours
    -- already run in parallel sessions (workers would compete with them).
    -- madlib_compat.parallel_min_scan_size (e.g. '1MB') lowers the
    -- threshold for this statement only; unset, the server's settings apply.
    begin
        v_par := nullif(pg_catalog.current_setting('madlib_compat.parallel_min_scan_size', true), '');
    exception when others then
        v_par := null;
    end;
    if v_par is not null then
        v_minpar := madlib_compat._set_if_exists('min_parallel_table_scan_size', v_par);
    end if;
    -- The product itself, the bulk of the work, is a plain SELECT run by
    -- EXECUTE ... INTO: unlike an INSERT or a cursor loop, it may use
    -- parallel workers (partial sums per worker). Its rows come back as
    -- arrays (group ids, b, and a 2-D array of the k sums per row) and the
    -- statement that writes the outputs reads them as parameters.
    -- W is spelt as a VALUES list: a parameter would be copied into the
    -- plan once per use (and the plan is shipped to every worker), and the
    -- OFFSET 0 that keeps it spelt once also keeps the join out of workers.
    -- float8 text output is exact (shortest round-trip form, PostgreSQL 12+).
    select string_agg(format('(%s, %s, %s)', u.g, u.a,
                             (select string_agg(x::text || '::float8', ', ' order by t.i)
                                from unnest(p_w[(u.o - 1) * v_kmax + 1 : u.o * v_kmax]) with ordinality t(x, i))),
                      ', ' order by u.o)
      into v_sql
      from unnest(p_gid, p_a) with ordinality u(g, a, o);
    execute format($q$
        select array_agg(y.__gid), array_agg(y.b), array_agg(y.y)
        from (select x.__gid, x.b, array[%1$s] as y
              from (%2$s) x
              join (values %3$s) w(__gid, a, %4$s) on w.a = x.a%5$s
              group by x.__gid, x.b) y $q$,
        madlib_compat._list('sum(x.v * w.w%1$s)', v_kmax),
        v_src_sql, v_sql, madlib_compat._list('w%1$s', v_kmax),
        case when v_grouped then ' and w.__gid = x.__gid' end)
        into yg, yb, yy;
    if v_par is not null then
        perform madlib_compat._set_if_exists('min_parallel_table_scan_size', v_minpar);
    end if;
end
$$;

-- Writes pc_table from the product: wide, component i of a group is column i of Y over its
-- norm and sigma_i that norm; tall, the components are the eigenvectors and sigma_i = |Xc v_i|
-- (more accurate for small components than sqrt(eigenvalue of the Gram)).
create or replace function madlib_compat._pca_train_write(
    v_wide boolean, v_kmax int, m int, n int, ns int, v_pcq text, v_gsel text, v_gfrom text,
    p_yg int[], p_yb int[], p_yy float8[], g_id int[], g_kg int[], g_total float8[],
    p_sh float8[], p_w float8[])
returns void
language plpgsql as $$
declare
    v_sql text;
begin
    v_sql := format($q$
        with y as %2$s (
            select u.g as __gid, u.b, %1$s
            from unnest($1::int[], $2::int[]) with ordinality as u(g, b, o), (select $3::float8[] as yy offset 0) s),
        gi as (select * from unnest($4::int[], $5::int[], $6::float8[]) with ordinality as gi(__gid, kg, total, o)) $q$,
        -- wide: k columns (read as plain columns below); tall: one array
        case when v_wide then madlib_compat._list('s.yy[u.o][%1$s] as y%1$s', v_kmax)
             else format('array[%s] as y', madlib_compat._list('s.yy[u.o][%1$s]', v_kmax)) end,
        madlib_compat._cte_materialized());
    if v_wide then
        -- component i of a group is column i of Y over its norm, as a
        -- col_dim-long array (0 where a column has no non-zero): the rows of
        -- Y go through one sort by (group, column), then k plain array_aggs
        -- collect them in that order (a sorted subquery feeding an aggregate
        -- keeps its order; no join sits in between). Padding columns of
        -- groups with fewer components have norm 0 (null) and are not emitted.
        v_sql := v_sql || format($q$,
            sg as (select __gid, %1$s from y group by __gid),
            ca as (
                select z.__gid, %2$s
                from (select gs.__gid, %3$s
                        from (select gi.__gid, b from gi cross join generate_series(1, %4$s) b where gi.kg > 0) gs
                        join sg on sg.__gid = gs.__gid
                        left join y on y.__gid = gs.__gid and y.b = gs.b
                       order by gs.__gid, gs.b) z
                group by z.__gid)
        insert into %5$s
        select t.i, t.pc, t.sig / sqrt(%6$s - 1), t.sig * t.sig / q.total %7$s
        from gi q
        join ca on ca.__gid = q.__gid
        join sg on sg.__gid = q.__gid
        cross join lateral (values %8$s) t(i, pc, sig) %9$s
        where t.i <= q.kg
        order by q.o, t.i $q$,
            madlib_compat._list('sqrt(sum(y%1$s * y%1$s)) as s%1$s', v_kmax),
            madlib_compat._list('array_agg(z.v%1$s) as a%1$s', v_kmax),
            madlib_compat._list('coalesce(y.y%1$s / nullif(sg.s%1$s, 0), 0) as v%1$s', v_kmax),
            m, v_pcq, n::float8, v_gsel,
            madlib_compat._list('(%1$s, ca.a%1$s, sg.s%1$s)', v_kmax), v_gfrom);
    else
        -- rows without any non-zero contribute (0 - shift)^2
        v_sql := v_sql || format($q$,
            sg as (
                select y.__gid, count(*) as cnt, array[%1$s] as sq
                from y join gi on gi.__gid = y.__gid group by y.__gid)
        insert into %2$s
        select t.i,
               array(select $8[((q.o - 1) * %3$s + j - 1) * %4$s + t.i] from generate_series(1, %3$s) j),
               s.sig / sqrt(%5$s - 1), s.sig * s.sig / q.total %6$s
        from gi q
        left join sg on sg.__gid = q.__gid
        cross join lateral generate_series(1, q.kg) t(i)
        cross join lateral (
            select sqrt(coalesce(sg.sq[t.i], 0)
                        + (%5$s - coalesce(sg.cnt, 0)) * $7[(q.o - 1) * %4$s + t.i] * $7[(q.o - 1) * %4$s + t.i]) as sig) s
        %7$s
        order by q.o, t.i $q$,
            madlib_compat._list(format('sum((y[%%1$s] - $7[(gi.o - 1) * %s + %%1$s]) * (y[%%1$s] - $7[(gi.o - 1) * %s + %%1$s]))', v_kmax, v_kmax), v_kmax),
            v_pcq, ns, v_kmax, n::float8, v_gsel, v_gfrom);
    end if;
    -- $7/$8 (shifts, W) serve the tall statement only
    execute v_sql using p_yg, p_yb, p_yy, g_id, g_kg, g_total, p_sh, p_w;
end
$$;

-- MADlib's SVD summary table: per group, RMS error of the rank-k reconstruction of the
-- centred matrix, and its norm relative to the centred matrix.
create or replace function madlib_compat._pca_train_summary(
    v_sumq text, v_gdefs text, v_gsel text, v_gfrom text, n int, m int, t0 timestamptz,
    g_id int[], g_kg int[], g_total float8[], g_resid float8[])
returns void
language plpgsql as $$
begin
    execute format(
        'create table %s (rows_used integer, "exec_time (ms)" numeric, iter integer,
                          recon_error double precision, relative_recon_error double precision,
                          use_correlation boolean%s)',
        v_sumq, v_gdefs);
    execute format(
        'insert into %s
         select $1, round(($2)::numeric, 3), q.kg, sqrt(q.resid / ($1::float8 * $3)),
                case when q.total > 0 then sqrt(q.resid / q.total) else 0 end, false %s
         from unnest($4::int[], $5::int[], $6::float8[], $7::float8[]) with ordinality as q(__gid, kg, total, resid, o) %s
         order by q.o',
        v_sumq, v_gsel, v_gfrom)
        using n, extract(epoch from clock_timestamp() - t0) * 1000, m, g_id, g_kg, g_total, g_resid;
end
$$;

-- pca_sparse_train, checked, then: the groups, one read of the input for every group's Gram
-- matrix (which also validates it), per group the centred Gram matrix, its eigenvectors,
-- the components kept and the mean, then one large-side product for all groups, and the
-- outputs. One transaction: a failure anywhere leaves no output table behind.
create or replace function madlib_compat._pca_train(
    source_table text, pc_table text, row_id text, col_id text, val_id text,
    row_dim integer, col_dim integer, k integer, grouping_cols text, lanczos_iter integer,
    use_correlation boolean, result_summary_table text, variance double precision)
returns void
language plpgsql
set client_min_messages = warning
as $$
declare
    t0 timestamptz := clock_timestamp();
    a record;          -- the checked arguments (_pca_train_args)
    gr record;         -- the groups and the input statement (_pca_train_groups)
    pk record;         -- the product's parameters (_pca_train_pack)
    y record;          -- the product (_pca_train_product)
    n int := row_dim;
    m int := col_dim;
    v_wide boolean := row_dim <= col_dim;
    ns int := least(row_dim, col_dim);
    nb int := greatest(row_dim, col_dim);
    v_jit text; v_work_mem text; v_mergejoin text; v_sort text;
    v_form text;
    v_sql text;
    v_first boolean := true;
    v_grp int; v_ka int[]; v_kf float8[]; v_cs float8[]; v_bad bigint; v_dup bigint;
    v_g float8[]; v_total float8; v_maxdiag float8; v_lam float8[]; v_u float8[];
    v_kg int; v_resid float8; v_w float8[]; v_shift float8[];
    v_kmax int := 0;
    -- per group, in group order (o = 1..ng)
    ng int := 0;
    g_id int[] := array[]::int[];
    g_kg int[] := array[]::int[];
    g_total float8[] := array[]::float8[];
    g_resid float8[] := array[]::float8[];
    g_wall float8[] := array[]::float8[];
    g_woff int[] := array[]::int[];
    g_shall float8[] := array[]::float8[];
    g_shoff int[] := array[]::int[];
    i int;
begin
    -- Our statements are planned without statistics on their intermediate
    -- results: the row guesses can cross the JIT thresholds, and compiling
    -- then costs far more than running.
    v_jit := madlib_compat._set_if_exists('jit', 'off');
    v_work_mem := madlib_compat._raise_work_mem(65536);
    -- ... and the joins below are all "large input x small dense table on an
    -- equality": hash joins. Without statistics the planner would sort-merge.
    v_mergejoin := madlib_compat._set_if_exists('enable_mergejoin', 'off');

    select * into a from madlib_compat._pca_train_args(
        source_table, pc_table, row_id, col_id, val_id, row_dim, col_dim, k, grouping_cols,
        lanczos_iter, use_correlation, result_summary_table, variance);

    -- Gram matrix of the small side: wide data (row_dim <= col_dim) uses the
    -- row_dim x row_dim Gram X Xc^T, tall data the col_dim x col_dim covariance.
    v_form := madlib_compat._pca_gram_form(ns);
    select * into gr from madlib_compat._pca_train_groups(a.src, a.srcq, a.gcols, v_wide, a.r, a.c, a.v, ns, nb);
    v_sql := madlib_compat._pca_gram_sql(v_form, gr.v_src_sql, gr.v_groups_sql, gr.v_grouped, v_wide, ns, nb, m);

    for v_grp, v_ka, v_kf, v_cs, v_bad, v_dup in execute v_sql loop
        if v_first then
            if v_bad > 0 then
                raise exception 'Matrix error: Invalid index in matrix (%). All row and column indices must be in the range [1, DIM]', source_table;
            end if;
            if v_dup > 0 then
                execute format('select a from (%s) x group by __gid, a, b having count(*) > 1 order by 1 limit 1', gr.v_src_sql)
                    into i;
                raise exception 'Matrix error: Following entries are duplicated in sparse matrix (%)', source_table
                    using detail = format('first duplicated position: %s of a row or column', i);
            end if;
            perform madlib_compat._pca_train_create_outputs(a.pcq, a.meanq, gr.v_gdefs, true);
            v_first := false;
        end if;
        if v_cs is null then
            v_cs := array_fill(0::float8, array[m]);
        else
            v_cs := array_replace(v_cs, null::float8, 0::float8);
        end if;
        select c.v_g, c.v_total, c.v_tol into v_g, v_total, v_maxdiag
        from madlib_compat._pca_centred_gram(v_form, v_ka, v_kf, v_cs, v_wide, ns, n) c;
        -- only the leading eigenvectors are ever used: k of them, or as many as
        -- the proportion asks for (the rule of _pca_components_kept, which can only stop earlier)
        select e.eigenvalues, e.vectors into v_lam, v_u
        from madlib_compat._symeig_core(v_g, ns, case when k is not null then least(k, ns) end,
                                        case when k is null then variance end) e;
        select c.kg, c.resid into v_kg, v_resid
        from madlib_compat._pca_components_kept(v_lam, v_total, v_maxdiag, k, variance, lanczos_iter, ns, source_table) c;
        v_kmax := greatest(v_kmax, v_kg);
        select x.w, x.shift into v_w, v_shift
        from madlib_compat._pca_weights(v_g, v_u, v_kg, k is null, v_cs, v_wide, ns, n) x;

        ng := ng + 1;
        g_id[ng] := v_grp;
        g_kg[ng] := v_kg;
        g_total[ng] := v_total;
        g_resid[ng] := v_resid;
        g_woff[ng] := coalesce(cardinality(g_wall), 0);
        g_wall := g_wall || v_w;               -- column-major ns x kg
        g_shoff[ng] := coalesce(cardinality(g_shall), 0);
        g_shall := g_shall || v_shift;

        execute format('insert into %s select $1::float8[] %s from (select $2::int as __gid) q %s',
                       a.meanq, gr.v_gsel, gr.v_gfrom)
            using array(select x / n::float8 from unnest(v_cs) x), v_grp;
    end loop;
    if v_first then
        -- no group at all (grouping columns all null): empty outputs
        perform madlib_compat._pca_train_create_outputs(a.pcq, a.meanq, gr.v_gdefs, false);
    end if;

    if v_kmax > 0 then
        select * into pk from madlib_compat._pca_train_pack(
            ng, ns, v_kmax, v_wide, g_id, g_kg, g_wall, g_woff, g_shall, g_shoff);
        -- grouped input: without statistics the planner over-estimates the
        -- (group, b) count and would sort the whole join output instead of hashing
        v_sort := madlib_compat._set_if_exists('enable_sort', 'off');
        select * into y from madlib_compat._pca_train_product(gr.v_src_sql, gr.v_grouped, v_kmax, pk.p_gid, pk.p_a, pk.p_w);
        perform madlib_compat._pca_train_write(v_wide, v_kmax, m, n, ns, a.pcq, gr.v_gsel, gr.v_gfrom,
                                               y.yg, y.yb, y.yy, g_id, g_kg, g_total, pk.p_sh, pk.p_w);
        perform madlib_compat._set_if_exists('enable_sort', v_sort);
    end if;
    if a.sumq is not null then
        perform madlib_compat._pca_train_summary(a.sumq, gr.v_gdefs, gr.v_gsel, gr.v_gfrom, n, m, t0,
                                                 g_id, g_kg, g_total, g_resid);
    end if;

    drop table if exists pg_temp.__mc_g;
    perform madlib_compat._set_if_exists('enable_mergejoin', v_mergejoin);
    perform pg_catalog.set_config('work_mem', v_work_mem, true);
    perform madlib_compat._set_if_exists('jit', v_jit);
end
$$;
{% endraw %}
{% endmacro %}
