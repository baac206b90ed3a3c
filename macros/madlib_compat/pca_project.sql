{#-
  madlib_compat.pca_sparse_project's implementation (MADlib's pca_project.py_in): _pca_project
  runs the steps below per group. The interface is pca.sql; the checks are pca_validate.sql.
-#}
{% macro madlib_compat__pca_project_ddl() %}
{% raw %}
-- The groups: the pc table's columns beyond the model's own, which the source must have too
-- (a temp table of their values), and the statements' pieces that select one group ($1).
create or replace function madlib_compat._pca_project_groups(
    v_src oid, v_srcq text, v_pcrel oid, v_pcq text, v_r text, v_c text, v_v text,
    source_table text, pc_table text,
    out v_gdefs text, out v_gsel text, out v_gfrom text, out v_model_from text,
    out v_src_sql text, out v_groups int[])
language plpgsql as $$
declare
    v_gcols text[] := array[]::text[];
    v_gjoin_src text;
    v_gjoin_pc text;
begin
    v_gdefs := '';
    v_gsel := '';
    v_gfrom := '';
    -- Grouping columns = columns of the pc table beyond the model's own.
    select coalesce(array_agg(quote_ident(a.attname) order by a.attnum), array[]::text[]) into v_gcols
    from pg_catalog.pg_attribute a
    where a.attrelid = v_pcrel and a.attnum > 0 and not a.attisdropped
      and a.attname not in ('row_id', 'principal_components', 'std_dev', 'proportion');

    drop table if exists pg_temp.__mp_g;
    if cardinality(v_gcols) > 0 then
        if exists (select 1 from unnest(v_gcols) g where madlib_compat._column(v_src, g) is null) then
            raise exception 'PCA error: One or more grouping columns in % do not exist in %, but the model in % was learnt with grouping!',
                array_to_string(v_gcols, ', '), source_table, pc_table;
        end if;
        select string_agg(format('%s %s', quote_ident(a.attname), format_type(a.atttypid, a.atttypmod)), ', ' order by g.ord),
               string_agg('g.' || quote_ident(a.attname), ', ' order by g.ord),
               string_agg(format('s.%1$s = g.%1$s', quote_ident(a.attname)), ' and ' order by g.ord),
               string_agg(format('t.%1$s = g.%1$s', quote_ident(a.attname)), ' and ' order by g.ord)
          into v_gdefs, v_gsel, v_gjoin_src, v_gjoin_pc
        from unnest(v_gcols) with ordinality as g(col, ord)
        join pg_catalog.pg_attribute a on a.attrelid = v_src and quote_ident(a.attname) = g.col;
        v_gdefs := ', ' || v_gdefs;
        v_gsel := ', ' || v_gsel;
        execute format(
            'create temp table __mp_g as select (row_number() over (order by %1$s))::int as __gid, %1$s
               from (select distinct %1$s from %2$s) s',
            array_to_string(v_gcols, ', '), v_pcq);
        v_gfrom := ' join pg_temp.__mp_g g on g.__gid = $1';
        v_model_from := ' t join pg_temp.__mp_g g on ' || v_gjoin_pc || ' where g.__gid = $1';
        v_src_sql := format(
            'select s.%s::int4 as r, s.%s::int4 as c, s.%s::float8 as v from %s s join pg_temp.__mp_g g on %s where g.__gid = $1 and s.%s is not null',
            v_r, v_c, v_v, v_srcq, v_gjoin_src, v_v);
        select array_agg(__gid order by __gid) into v_groups from pg_temp.__mp_g;
    else
        v_model_from := ' t where $1 = 1';
        v_src_sql := format(
            'select s.%s::int4 as r, s.%s::int4 as c, s.%s::float8 as v from %s s where $1 = 1 and s.%s is not null',
            v_r, v_c, v_v, v_srcq, v_v);
        v_groups := array[1];
    end if;

end
$$;

-- A group's model: V (k x col_dim, components in row_id order) and the mean, read once into
-- variables: the set-based statements get them as parameters, so no 8 kB+ array is
-- detoasted per row.
create or replace function madlib_compat._pca_project_model(
    v_pcq text, v_meanq text, v_model_from text, v_grp int, m int,
    out v_k int, out v_vv float8[], out v_mu float8[])
language plpgsql stable as $$
declare
    v_bad bigint;
begin
    execute format(
        'select count(*), count(*) filter (where coalesce(cardinality(t.principal_components), 0) <> $2),
                array_agg(case when cardinality(t.principal_components) = $2 then t.principal_components::float8[]
                               else array_fill(0::float8, array[$2]) end order by t.row_id)
           from %s %s', v_pcq, v_model_from)
        into v_k, v_bad, v_vv using v_grp, m;
    execute format('select t.column_mean::float8[] from %s %s', v_meanq, v_model_from)
        into v_mu using v_grp;
    if v_bad > 0 or coalesce(cardinality(v_mu), 0) <> m then
        -- MADlib's message, from its matrix product (pc_table's dimension: its mean's)
        raise exception 'Matrix error: Dimension mismatch for matrix multiplication. Left matrix, col dimension = %, Right matrix, row dimension = %',
            m, coalesce(cardinality(v_mu), 0);
    end if;
end
$$;

-- The projection statement, one read of the input: per row, the dense row (null when an index
-- is out of range or given twice) and, when k > 0, x V' over the non-zeros; mean V' is
-- subtracted from every projected row ((x - mean) V' = xV' - mean V'). Returns the index
-- checks' counts, |X|_F, the centred projections (row-major n x k) and, with v_rows, the
-- dense rows for the residual.
create or replace function madlib_compat._pca_project_sql(v_src_sql text, m int, n int, v_k int, v_rows boolean)
returns text
language plpgsql stable as $$
declare
    v_sql text;
begin
    -- one read of the input: per row, the dense row (null when an index is
    -- out of range or given twice) and, when k > 0, x V' over the non-zeros;
    -- mean V' is subtracted from every projected row ((x - mean) V' = xV' - mean V').
    v_sql := format($q$
        with x as %7$s (%1$s),
        %3$s
        xd as %7$s (
            select r, madlib_compat._dense(%2$s, array_agg(c), array_agg(v)) as d,
                   count(*) filter (where c is null or c < 1 or c > %2$s) as bad, sum(v * v) as ss
            from x group by r)
        select (select coalesce(sum(bad), 0) + count(*) filter (where r is null or r < 1 or r > %4$s) from xd),
               (select count(*) filter (where d is null) from xd),
               (select sqrt(sum(ss)) from xd),
               %5$s,
               %6$s $q$,
        v_src_sql, m,
        case when v_k > 0 then format(
            'p as %s (select c, $3[c] as mu, %s from (select $2 as vv offset 0) s, generate_series(1, %s) c),
             bm as (select array[%s]::float8[] as bm from p),
             z as (select x.r, array[%s]::float8[] as z from x join p on p.c = x.c group by x.r),',
            madlib_compat._cte_materialized(), madlib_compat._list('s.vv[%1$s][c] as p%1$s', v_k), m,
            madlib_compat._list('sum(mu * p%1$s)', v_k),
            madlib_compat._list('sum(x.v * p%1$s)', v_k))
        else '' end,
        n,
        -- centred projections of every row 1..row_dim, row-major n x k (rows
        -- without a non-zero project to -mean V')
        case when v_k > 0 then format(
            '(select array_agg(coalesce(z.z[i.i], 0) - bm.bm[i.i] order by gs.r, i.i)
                from generate_series(1, %s) gs(r) left join z on z.r = gs.r
                cross join bm cross join generate_series(1, %s) i(i))', n, v_k)
        else 'null::float8[]' end,
        -- the dense rows, for the residual
        case when v_rows then format(
            '(select array_agg(coalesce(xd.d, $4) order by gs.r)
                from generate_series(1, %s) gs(r) left join xd on xd.r = gs.r)', n)
        else 'null::float8[]' end,
        madlib_compat._cte_materialized());
    return v_sql;
end
$$;

-- The output tables (with the grouping columns' definitions); the residual's col_dim-long
-- rows stored uncompressed (compressing doubles costs more than it saves).
create or replace function madlib_compat._pca_project_create_outputs(
    v_outq text, v_resq text, v_sumq text, v_gdefs text)
returns void
language plpgsql as $$
begin
    execute format('create table %s (row_id integer, row_vec double precision[]%s)', v_outq, v_gdefs);
    if v_resq is not null then
        execute format('create table %s (row_id integer, row_vec double precision[]%s)', v_resq, v_gdefs);
        -- col_dim-long rows stored uncompressed (compressing doubles costs more than it saves)
        execute format('alter table %s alter column row_vec set storage external', v_resq);
    end if;
    if v_sumq is not null then
        execute format('create table %s (exec_time double precision, residual_norm double precision,
                                         relative_residual_norm double precision%s)', v_sumq, v_gdefs);
    end if;
end
$$;

-- The residual statement: (x - mean) - z V over the dense row_dim x col_dim grid, row_dim x
-- col_dim x k multiply-adds with every operand a column; per row its vector (with
-- v_vectors) and its sum of squares.
create or replace function madlib_compat._pca_project_residual_sql(m int, n int, v_k int, v_vectors boolean)
returns text
language plpgsql stable as $$
declare
    v_blk int;
    v_sql text;
begin
    -- residual = (x - mean) - z V over the dense row_dim x col_dim grid:
    -- row_dim x col_dim x k multiply-adds with every operand a column.
    -- v_blk rows per pass over p (each pass re-reads col_dim rows of k
    -- columns). The big arrays are referenced once each, through a
    -- subquery: a parameter spelt k times is copied k times by the planner.
    v_blk := greatest(1, least(8, 512 / greatest(v_k, 1)));
    v_sql := format($q$
        with p as %9$s (
            select c, $3[c] as mu%1$s
            from (select $2 as vv offset 0) s, generate_series(1, %2$s) c),
        zb as %9$s (
            select b0%3$s
            from (select $5 as zz offset 0) s, generate_series(0, %4$s) b0)
        select t.r, t.rv, t.ss
        from zb
        cross join (select $4 as xx offset 0) sx
        cross join lateral (
            select %5$s
            from (select p.c, %6$s
                    from p
                  offset 0) e   -- evaluated once per cell, not once per use
            ) q
        cross join lateral (values %7$s) t(r, rv, ss)
        where t.r <= %8$s
        order by t.r $q$,
        case when v_k > 0 then ', ' || madlib_compat._list('s.vv[%1$s][c] as p%1$s', v_k) else '' end,
        m,
        (select string_agg(format(', b0 * %s + %s as r%2$s', v_blk, t.t)
                           || case when v_k > 0 then ', ' || madlib_compat._list(
                                  format('s.zz[(b0 * %s + %s - 1) * %s + %%1$s] as z%2$s_%%1$s', v_blk, t.t, v_k), v_k)
                              else '' end, '' order by t.t)
           from generate_series(1, v_blk) t(t)),
        (n - 1) / v_blk,
        (select string_agg(case when v_vectors then format('array_agg(e.v%s order by e.c) as rv%1$s', t.t)
                                else format('null::float8[] as rv%s', t.t) end
                           || format(', sum(e.v%s * e.v%1$s) as ss%1$s', t.t), ', ' order by t.t)
           from generate_series(1, v_blk) t(t)),
        (select string_agg(format('sx.xx[zb.r%s][p.c] - p.mu', t.t)
                           || case when v_k > 0 then ' - (' || madlib_compat._list(format('zb.z%s_%%1$s * p.p%%1$s', t.t), v_k, ' + ') || ')'
                              else '' end
                           || format(' as v%s', t.t), ', ' order by t.t)
           from generate_series(1, v_blk) t(t)),
        (select string_agg(format('(zb.r%s, q.rv%1$s, q.ss%1$s)', t.t), ', ' order by t.t)
           from generate_series(1, v_blk) t(t)),
        n, madlib_compat._cte_materialized());
    return v_sql;
end
$$;

-- Writes a group's residual rows (when residual_table is given) and summary row (when
-- result_summary_table is): MADlib's residual_norm = |R|_F and relative_residual_norm =
-- |R|_F / |X|_F of the input as given (not centred), 0 when |X|_F <= 1e-6.
create or replace function madlib_compat._pca_project_residual(
    v_resq text, v_sumq text, v_gsel text, v_gfrom text, m int, n int, t0 timestamptz,
    v_grp int, v_k int, v_vv float8[], v_mu float8[], v_xx float8[], v_z float8[], v_xnorm float8)
returns void
language plpgsql as $$
declare
    v_sql text := madlib_compat._pca_project_residual_sql(m, n, v_k, v_resq is not null);
    v_ins text;
    v_rss float8;
    v_row int;
    v_rv float8[];
    v_rowss float8;
begin
    v_ins := format('insert into %s select $2, $3%s from (select 1) q%s', v_resq, v_gsel, v_gfrom);
    v_rss := 0;
    for v_row, v_rv, v_rowss in execute v_sql using v_grp, v_vv, v_mu, v_xx, v_z loop
        v_rss := v_rss + v_rowss;
        if v_resq is not null then
            execute v_ins using v_grp, v_row, v_rv;
        end if;
    end loop;
    if v_sumq is not null then
        -- MADlib: residual_norm = |R|_F; relative = |R|_F / |X|_F where X is
        -- the input as given (not centred); 0 when |X|_F <= 1e-6.
        execute format(
            'insert into %s select $2, $3, case when coalesce($4, 0) > 1e-6 then $3 / $4 else 0 end %s
               from (select 1) q%s', v_sumq, v_gsel, v_gfrom)
            using v_grp, extract(epoch from clock_timestamp() - t0) * 1000, sqrt(v_rss), v_xnorm;
    end if;
end
$$;

-- pca_sparse_project, checked, then per group: the model, the projection (one read of the
-- input, which also validates it), the outputs, the residual and the summary.
create or replace function madlib_compat._pca_project(
    source_table text, pc_table text, out_table text, row_id text, col_id text, val_id text,
    row_dim int4, col_dim int4, residual_table text, result_summary_table text)
returns void
language plpgsql
set client_min_messages = warning
as $$
declare
    t0 timestamptz := clock_timestamp();
    a record;          -- the checked arguments (_pca_project_args)
    gr record;         -- the groups (_pca_project_groups)
    md record;         -- a group's model (_pca_project_model)
    n int := row_dim;
    m int := col_dim;
    v_jit text;
    v_work_mem text;
    v_mergejoin text;
    v_first boolean := true;
    v_grp int;
    v_bad bigint;
    v_dup bigint;
    v_xnorm float8;
    v_z float8[];
    v_xx float8[];
begin
    -- Our temp tables have no statistics, so the planner's row guesses can
    -- cross the JIT thresholds: compiling then costs far more than running.
    v_jit := madlib_compat._set_if_exists('jit', 'off');
    v_work_mem := madlib_compat._raise_work_mem(65536);
    -- the joins below are "large input x small dense table on an equality":
    -- hash joins. Without statistics the planner would sort-merge.
    v_mergejoin := madlib_compat._set_if_exists('enable_mergejoin', 'off');

    select * into a from madlib_compat._pca_project_args(
        source_table, pc_table, out_table, row_id, col_id, val_id, row_dim, col_dim,
        residual_table, result_summary_table);
    select * into gr from madlib_compat._pca_project_groups(
        a.src, a.srcq, a.pcrel, a.pcq, a.r, a.c, a.v, source_table, pc_table);

    foreach v_grp in array coalesce(gr.v_groups, array[]::int[]) loop
        select * into md from madlib_compat._pca_project_model(a.pcq, a.meanq, gr.v_model_from, v_grp, m);
        execute madlib_compat._pca_project_sql(gr.v_src_sql, m, n, md.v_k, a.resq is not null or a.sumq is not null)
            into v_bad, v_dup, v_xnorm, v_z, v_xx
            using v_grp, md.v_vv, md.v_mu, array_fill(0::float8, array[m]);
        if v_bad > 0 then
            raise exception 'Matrix error: Invalid index in matrix (%). All row and column indices must be in the range [1, DIM]', source_table;
        end if;
        if v_dup > 0 then
            raise exception 'Matrix error: Following entries are duplicated in sparse matrix (%)', source_table;
        end if;
        if v_first then
            -- this is one transaction: all or nothing
            perform madlib_compat._pca_project_create_outputs(a.outq, a.resq, a.sumq, gr.v_gdefs);
            v_first := false;
        end if;
        if md.v_k > 0 then
            execute format(
                'insert into %s select gs.r, $2[(gs.r - 1) * %s + 1 : gs.r * %2$s] %s
                   from generate_series(1, %s) gs(r) %s order by gs.r',
                a.outq, md.v_k, gr.v_gsel, n, gr.v_gfrom)
                using v_grp, v_z;
        end if;
        if a.resq is not null or a.sumq is not null then
            perform madlib_compat._pca_project_residual(
                a.resq, a.sumq, gr.v_gsel, gr.v_gfrom, m, n, t0,
                v_grp, md.v_k, md.v_vv, md.v_mu, v_xx, v_z, v_xnorm);
        end if;
    end loop;

    drop table if exists pg_temp.__mp_g;
    perform madlib_compat._set_if_exists('enable_mergejoin', v_mergejoin);
    perform pg_catalog.set_config('work_mem', v_work_mem, true);
    perform madlib_compat._set_if_exists('jit', v_jit);
end
$$;
{% endraw %}
{% endmacro %}
