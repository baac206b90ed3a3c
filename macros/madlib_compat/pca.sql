{#-
  madlib_compat's interface (MADlib's pca.sql_in): pca_sparse_train and pca_sparse_project
  with MADlib 2.x's signatures, overloads and help, computed with SQL and PL/pgSQL only.
  The full forms delegate to the implementation (_pca_train in pca_train.sql, _pca_project
  in pca_project.sql); every overload is one SQL call of its full form.
-#}
{% macro madlib_compat__pca_ddl() %}
{% raw %}
-- Principal components of a sparse matrix given as (row, column, value) triples.
-- Output tables: pc_table (row_id, principal_components, std_dev, proportion[, grouping
-- columns]), pc_table || '_mean' (column_mean[, grouping columns]) and, when named, the
-- summary (rows_used, "exec_time (ms)", iter, recon_error, relative_recon_error,
-- use_correlation[, grouping columns]).
create or replace function madlib_compat.pca_sparse_train(
    source_table         text,             -- table or view of the non-zero entries
    pc_table             text,             -- output table of the components (and prefix of the mean's)
    row_id               text,             -- column of source_table: row index, 1..row_dim
    col_id               text,             -- column of source_table: column index, 1..col_dim
    val_id               text,             -- column of source_table: the entry's value
    row_dim              integer,          -- rows of the matrix
    col_dim              integer,          -- columns of the matrix
    k                    integer,          -- components to keep (null when variance is given)
    grouping_cols        text,             -- comma-separated columns: one PCA per group (null: one)
    lanczos_iter         integer,          -- accepted for compatibility; > 0 caps k under a proportion
    use_correlation      boolean,          -- must be false, as in MADlib
    result_summary_table text,             -- output summary table (null: none)
    variance             double precision  -- proportion of variance to reach, in (0, 1] (null: k)
)
returns void language sql as $$
    select madlib_compat._pca_train($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
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

-- Projection of sparse data onto components trained by pca_sparse_train (or MADlib's).
-- Output tables: out_table (row_id, row_vec[, grouping columns]), the residual (row_id,
-- row_vec[, grouping columns]) and the summary (exec_time, residual_norm,
-- relative_residual_norm[, grouping columns]), the last two when named.
create or replace function madlib_compat.pca_sparse_project(
    source_table         text,  -- table or view of the non-zero entries
    pc_table             text,  -- the components (pc_table and pc_table_mean from training)
    out_table            text,  -- output table of the projected rows
    row_id               text,  -- column of source_table: row index, 1..row_dim
    col_id               text,  -- column of source_table: column index, 1..col_dim
    val_id               text,  -- column of source_table: the entry's value
    row_dim              int4,  -- rows of the matrix
    col_dim              int4,  -- columns of the matrix (the components' length)
    residual_table       text,  -- output table of the residual rows (null: none)
    result_summary_table text   -- output summary table (null: none)
)
returns void language sql as $$
    select madlib_compat._pca_project($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
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
