{#-
  madlib_compat.pca_sparse_project: projection of sparse data onto components
  trained by madlib_compat.pca_sparse_train (or MADlib), with MADlib's tables.
-#}
{% macro madlib_compat__pca_project_ddl() %}
{% raw %}
create or replace function madlib_compat.pca_sparse_project(
    source_table         text,
    pc_table             text,
    out_table            text,
    row_id               text,
    col_id               text,
    val_id               text,
    row_dim              int4,
    col_dim              int4,
    residual_table       text,
    result_summary_table text
)
returns void
language plpgsql
set client_min_messages = warning
as $$
declare
    t0 timestamptz := clock_timestamp();
    v_jit text;
    v_src oid; v_pcrel oid; v_meanrel oid;
    v_srcq text; v_pcq text; v_meanq text;
    v_out text[]; v_res text[]; v_sum text[];
    v_outq text; v_resq text; v_sumq text;
    v_r text; v_c text; v_v text;
    v_gcols text[] := array[]::text[];
    v_gdefs text := '';
    v_gsel text := '';
    v_gjoin_src text;
    v_gjoin_pc text;
    v_gjoin_mean text;
    v_src_sql text;
    n int := row_dim;
    m int := col_dim;
    v_kmax int;
    v_bad bigint;
    v_resid_expr text;
begin
    -- Our temp tables have no statistics, so the planner's row guesses can
    -- cross the JIT thresholds: compiling then costs far more than running.
    v_jit := madlib_compat._set_if_exists('jit', 'off');

    -- ---------------------------------------------------------------- checks
    -- Same order and wording as MADlib's pca_project._validate_args.
    v_src := madlib_compat._resolve_relation(source_table);
    if v_src is null then
        raise exception 'PCA error: Source data table does not exist!';
    end if;
    v_pcrel := madlib_compat._resolve_relation(pc_table);
    if v_pcrel is null then
        raise exception 'PCA error: Principal comp. table does not exist!';
    end if;
    v_meanrel := madlib_compat._resolve_relation(
        madlib_compat._quote_qualified_name(
            array[(madlib_compat._parse_qualified_name(pc_table))[1],
                  (madlib_compat._parse_qualified_name(pc_table))[2] || '_mean']));
    if v_meanrel is null then
        raise exception 'PCA error: Source data table column means does not exist!';
    end if;
    v_out := madlib_compat._parse_qualified_name(out_table);
    if v_out is null then
        raise exception 'PCA error: Invalid output table name.';
    end if;
    if madlib_compat._output_exists(v_out) then
        raise exception 'PCA error: Output table % already exists!', out_table;
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
    if residual_table is not null then
        v_res := madlib_compat._parse_qualified_name(residual_table);
        if v_res is null then
            raise exception 'PCA error: Invalid residual table name!';
        end if;
        if madlib_compat._output_exists(v_res) then
            raise exception 'PCA error: Residual table % already exists!', residual_table;
        end if;
    end if;
    v_r := madlib_compat._column(v_src, row_id);
    if v_r is null then
        raise exception 'PCA error: % column does not exist in %!', coalesce(row_id, 'NULL'), source_table;
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
    if not (row_dim > 0 and col_dim > 0) then
        raise exception 'PCA error: row_dim/col_dim should be positive integer';
    end if;

    v_srcq := v_src::regclass::text;
    v_pcq := v_pcrel::regclass::text;
    v_meanq := v_meanrel::regclass::text;
    v_outq := madlib_compat._quote_qualified_name(v_out);
    if v_res is not null then
        v_resq := madlib_compat._quote_qualified_name(v_res);
    end if;
    if v_sum is not null then
        v_sumq := madlib_compat._quote_qualified_name(v_sum);
    end if;

    -- Grouping columns = columns of the pc table beyond the model's own.
    select coalesce(array_agg(quote_ident(a.attname) order by a.attnum), array[]::text[]) into v_gcols
    from pg_catalog.pg_attribute a
    where a.attrelid = v_pcrel and a.attnum > 0 and not a.attisdropped
      and a.attname not in ('row_id', 'principal_components', 'std_dev', 'proportion');

    drop table if exists pg_temp.__mp_g, pg_temp.__mp_pc, pg_temp.__mp_mean, pg_temp.__mp_p,
        pg_temp.__mp_b, pg_temp.__mp_y, pg_temp.__mp_o, pg_temp.__mp_r;
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
        v_gjoin_pc := 'join pg_temp.__mp_g g on ' || v_gjoin_pc;
        v_src_sql := format(
            'select g.__gid, s.%s::int4 as r, s.%s::int4 as c, s.%s::float8 as v from %s s join pg_temp.__mp_g g on %s where s.%s is not null',
            v_r, v_c, v_v, v_srcq, v_gjoin_src, v_v);
    else
        create temp table __mp_g as select 1::int as __gid;
        v_gjoin_pc := 'cross join pg_temp.__mp_g g';
        v_src_sql := format(
            'select 1 as __gid, s.%s::int4 as r, s.%s::int4 as c, s.%s::float8 as v from %s s where s.%s is not null',
            v_r, v_c, v_v, v_srcq, v_v);
    end if;

    -- ------------------------------------------------------------- model
    execute format(
        'create temp table __mp_pc as
           select g.__gid, t.row_id::int as i, t.principal_components::float8[] as pc
           from %s t %s', v_pcq, v_gjoin_pc);
    execute format(
        'create temp table __mp_mean as
           select g.__gid, t.column_mean::float8[] as mu
           from %s t %s', v_meanq, v_gjoin_pc);
    if exists (select 1 from pg_temp.__mp_pc where coalesce(cardinality(pc), 0) <> m)
       or exists (select 1 from pg_temp.__mp_mean where coalesce(cardinality(mu), 0) <> m) then
        raise exception 'PCA error: col_dim (%) does not match the dimension of the principal components in %', m, pc_table;
    end if;
    select coalesce(max(cnt), 0) into v_kmax
    from (select __gid, count(*) as cnt from pg_temp.__mp_pc group by __gid) q;

    -- ------------------------------------------------ validation of indices
    execute format(
        'select count(*) from (%s) x where r is null or c is null or r < 1 or r > $1 or c < 1 or c > $2',
        v_src_sql) into v_bad using n, m;
    if v_bad > 0 then
        raise exception 'Matrix error: Invalid index in matrix (%). All row and column indices must be in the range [1, DIM]', source_table;
    end if;
    execute format('select count(*) from (select 1 from (%s) x group by __gid, r, c having count(*) > 1) d', v_src_sql)
        into v_bad;
    if v_bad > 0 then
        raise exception 'Matrix error: Following entries are duplicated in sparse matrix (%)', source_table;
    end if;

    -- output tables (this is one transaction: all or nothing)
    execute format('create table %s (row_id integer, row_vec double precision[]%s)', v_outq, v_gdefs);
    if v_resq is not null then
        execute format('create table %s (row_id integer, row_vec double precision[]%s)', v_resq, v_gdefs);
    end if;
    if v_sumq is not null then
        execute format('create table %s (exec_time double precision, residual_norm double precision,
                                         relative_residual_norm double precision%s)', v_sumq, v_gdefs);
    end if;

    if v_kmax > 0 then
        -- components transposed: p_c = (V[c,1], ..., V[c,kmax]), zero padded per group
        -- with the column mean beside it: a subscript of the col_dim-long mean array would
        -- detoast the whole array for every cell (seconds per 10^4 cells)
        create temp table __mp_p as
        select q.__gid, q.c, q.p || array_fill(0::float8, array[v_kmax - cardinality(q.p)]) as p, mu.x as mu
        from (select t.__gid, u.c::int as c, array_agg(u.x order by t.i) as p
              from pg_temp.__mp_pc t cross join lateral unnest(t.pc) with ordinality u(x, c)
              group by t.__gid, u.c) q
        join (select mn.__gid, u.c::int as c, u.x
              from pg_temp.__mp_mean mn cross join lateral unnest(mn.mu) with ordinality u(x, c)) mu
          on mu.__gid = q.__gid and mu.c = q.c;
        -- mean . V, subtracted from every projected row: (x - mean) V = xV - mean V
        execute format(
            'create temp table __mp_b as
               select p.__gid, %s as b
               from pg_temp.__mp_p p
               group by p.__gid',
            madlib_compat._wide_sum('p.mu', 'p.p', v_kmax));
        execute format(
            'create temp table __mp_y as
               select x.__gid, x.r, %s as y
               from (%s) x join pg_temp.__mp_p p on p.__gid = x.__gid and p.c = x.c
               group by x.__gid, x.r',
            madlib_compat._wide_sum('x.v', 'p.p', v_kmax), v_src_sql);
        -- centred projections of every row 1..row_dim (rows without a
        -- non-zero project to -mean V)
        execute format(
            'create temp table __mp_o as
               select b.__gid, gs.r, array[%s]::float8[] as z
               from pg_temp.__mp_b b cross join generate_series(1, $1) gs(r)
               left join pg_temp.__mp_y y on y.__gid = b.__gid and y.r = gs.r',
            (select string_agg(format('coalesce(y.y[%1$s], 0) - b.b[%1$s]', ix), ', ' order by ix)
             from generate_series(1, v_kmax) ix))
            using n;
        execute format(
            'insert into %s
             select o.r, o.z[1:kk.k] %s
             from pg_temp.__mp_o o
             join (select __gid, count(*)::int as k from pg_temp.__mp_pc group by __gid) kk on kk.__gid = o.__gid
             join pg_temp.__mp_g g on g.__gid = o.__gid
             order by o.__gid, o.r',
            v_outq, v_gsel);
    end if;

    if v_resq is not null or v_sumq is not null then
        -- residual = (x - mean) - z V^T over the dense row_dim x col_dim grid
        if v_kmax > 0 then
            v_resid_expr := 'coalesce(x.v, 0) - p.mu - ('
                || (select string_agg(format('o.z[%1$s]*p.p[%1$s]', ix), ' + ' order by ix)
                    from generate_series(1, v_kmax) ix) || ')';
            execute format(
                'create temp table __mp_r as
                 select o.__gid, o.r, %2$s as rv, sum(e.val * e.val) as rss
                 from pg_temp.__mp_o o
                 cross join generate_series(1, $1) gs(c)
                 join pg_temp.__mp_p p on p.__gid = o.__gid and p.c = gs.c
                 left join (%3$s) x on x.__gid = o.__gid and x.r = o.r and x.c = gs.c
                 cross join lateral (select %1$s as val) e
                 group by o.__gid, o.r',
                v_resid_expr,
                case when v_resq is not null then 'array_agg(e.val order by gs.c)' else 'null::float8[]' end,
                v_src_sql)
                using m;
        else
            execute format(
                'create temp table __mp_r as
                 select mn.__gid, gs.r, %1$s as rv, sum(e.val * e.val) as rss
                 from pg_temp.__mp_mean mn
                 cross join lateral unnest(mn.mu) with ordinality gc(mu, c)
                 cross join generate_series(1, $2) gs(r)
                 left join (%2$s) x on x.__gid = mn.__gid and x.r = gs.r and x.c = gc.c
                 cross join lateral (select coalesce(x.v, 0) - gc.mu as val) e
                 where gc.c <= $1
                 group by mn.__gid, gs.r',
                case when v_resq is not null then 'array_agg(e.val order by gc.c)' else 'null::float8[]' end,
                v_src_sql)
                using m, n;
        end if;
        if v_resq is not null then
            execute format(
                'insert into %s select r.r, r.rv %s from pg_temp.__mp_r r join pg_temp.__mp_g g on g.__gid = r.__gid order by r.__gid, r.r',
                v_resq, v_gsel);
        end if;
        if v_sumq is not null then
            -- MADlib: residual_norm = |R|_F; relative = |R|_F / |X|_F where X is
            -- the input as given (not centred); 0 when |X|_F <= 1e-6.
            execute format(
                'insert into %s
                 select $1, rn.nr,
                        case when coalesce(sn.ns, 0) > 1e-6 then rn.nr / sn.ns else 0 end %s
                 from (select __gid, sqrt(sum(rss)) as nr from pg_temp.__mp_r group by __gid) rn
                 join pg_temp.__mp_g g on g.__gid = rn.__gid
                 left join (select __gid, sqrt(sum(v * v)) as ns from (%s) x group by __gid) sn on sn.__gid = rn.__gid
                 order by rn.__gid',
                v_sumq, v_gsel, v_src_sql)
                using extract(epoch from clock_timestamp() - t0) * 1000;
        end if;
    end if;

    drop table if exists pg_temp.__mp_g, pg_temp.__mp_pc, pg_temp.__mp_mean, pg_temp.__mp_p,
        pg_temp.__mp_b, pg_temp.__mp_y, pg_temp.__mp_o, pg_temp.__mp_r;
    perform madlib_compat._set_if_exists('jit', v_jit);
end
$$;

create or replace function madlib_compat.pca_sparse_project(
    source_table text, pc_table text, out_table text, row_id text, col_id text,
    val_id text, row_dim int4, col_dim int4, residual_table text)
returns void language sql as $$
    select madlib_compat.pca_sparse_project($1, $2, $3, $4, $5, $6, $7, $8, $9, null::text)
$$;

create or replace function madlib_compat.pca_sparse_project(
    source_table text, pc_table text, out_table text, row_id text, col_id text,
    val_id text, row_dim int4, col_dim int4)
returns void language sql as $$
    select madlib_compat.pca_sparse_project($1, $2, $3, $4, $5, $6, $7, $8, null::text, null::text)
$$;

create or replace function madlib_compat.pca_sparse_project(usage_string text)
returns varchar language plpgsql immutable as $$
begin
    if lower(coalesce(usage_string, '')) in ('usage', 'help', '?') then
        return '
----------------------------------------------------------------
                        Usage
----------------------------------------------------------------
SELECT madlib_compat.pca_sparse_project (
    ''tbl_source'',          -- Data table
    ''pc_table'',            -- Table with principal components (from pca_sparse_train)
    ''tbl_result'',          -- Result table
    ''row_id'',              -- Name of the column containing the row_id
    ''col_id'',              -- Name of the column containing the col_id
    ''val_id'',              -- Name of the column containing the val_id
    row_dim,               -- Row dimension of the sparse matrix
    col_dim,               -- Column dimension of the sparse matrix
    -- Optional Parameters
    ''tbl_residual'',        -- Residual table (Default: NULL)
    ''tbl_result_summary''   -- Result summary table (Default : NULL)
);
Output tables: tbl_result(row_id, row_vec[, grouping cols]),
tbl_residual(row_id, row_vec[, grouping cols]),
tbl_result_summary(exec_time, residual_norm, relative_residual_norm[, grouping cols]).
';
    end if;
    return '
----------------------------------------------------------------
         Summary: PCA Projection (madlib_compat)
----------------------------------------------------------------
Projects a sparse dataset onto principal components trained by
madlib_compat.pca_sparse_train. For function usage information, run:
SELECT madlib_compat.pca_sparse_project(''usage'');
';
end
$$;

create or replace function madlib_compat.pca_sparse_project()
returns varchar language sql immutable as $$
    select madlib_compat.pca_sparse_project(''::text)
$$;
{% endraw %}
{% endmacro %}
