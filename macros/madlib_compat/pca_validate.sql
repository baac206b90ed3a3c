{#-
  madlib_compat's argument checks (MADlib's pca._validate_args and pca_project._validate_args):
  same messages, each check written once. pca_sparse_train and pca_sparse_project share the
  checks of the source table, the matrix columns and the output tables; each adds its own.
  Every name the caller gives is parsed here and returned quoted, so nothing after the checks
  splices user text into SQL.
-#}
{% macro madlib_compat__pca_validate_ddl() %}
{% raw %}
-- An existing table or view named by user text: its oid, else 'PCA error: ' || p_message
-- (%s in it stands for the name).
create or replace function madlib_compat._existing_table(p_name text, p_message text)
returns oid
language plpgsql stable as $$
declare
    v_oid oid := madlib_compat._resolve_relation(p_name);
begin
    if v_oid is null then
        raise exception '%', 'PCA error: ' || format(p_message, p_name);
    end if;
    return v_oid;
end
$$;

-- A table the call will create: its quoted name, else 'PCA error: ' || p_invalid (not a
-- plain identifier) or p_exists (already there where CREATE TABLE would put it; %s: the name).
create or replace function madlib_compat._new_table(p_name text, p_invalid text, p_exists text)
returns text
language plpgsql stable as $$
declare
    v_parts text[] := madlib_compat._parse_qualified_name(p_name);
begin
    if v_parts is null then
        raise exception '%', 'PCA error: ' || p_invalid;
    end if;
    if madlib_compat._output_exists(v_parts) then
        raise exception '%', 'PCA error: ' || format(p_exists, p_name);
    end if;
    return madlib_compat._quote_qualified_name(v_parts);
end
$$;

-- The optional result summary table: null when not asked for.
create or replace function madlib_compat._summary_table(p_name text)
returns text
language sql stable as $$
    select case when $1 is not null then madlib_compat._new_table(
        $1, 'Invalid result summary table name!', 'Result summary table %s already exists!') end
$$;

-- The sparse matrix's row, column and value columns of the source (quoted), in MADlib's order.
create or replace function madlib_compat._matrix_columns(
    p_src oid, p_source_table text, p_row_id text, p_col_id text, p_val_id text,
    out r text, out c text, out v text)
language plpgsql stable as $$
begin
    r := madlib_compat._column(p_src, p_row_id);
    if r is null then
        raise exception 'PCA error: % column does not exist in %!', coalesce(p_row_id, 'NULL'), p_source_table;
    end if;
    if p_col_id is null then
        raise exception 'PCA error: Column ID should be provided if value ID is input!';
    end if;
    if p_val_id is null then
        raise exception 'PCA error: Value ID should be provided if column ID is input!';
    end if;
    c := madlib_compat._column(p_src, p_col_id);
    if c is null then
        raise exception 'PCA error: % column does not exist in %!', p_col_id, p_source_table;
    end if;
    v := madlib_compat._column(p_src, p_val_id);
    if v is null then
        raise exception 'PCA error: % column does not exist in %!', p_val_id, p_source_table;
    end if;
end
$$;

-- pca_sparse_train's arguments, in MADlib's order (lanczos_iter is checked just before the
-- matrix columns rather than between the row and column ids). Returns the source (oid and
-- quoted name), its columns, the quoted output tables and the grouping columns.
create or replace function madlib_compat._pca_train_args(
    source_table text, pc_table text, row_id text, col_id text, val_id text,
    row_dim integer, col_dim integer, k integer, grouping_cols text, lanczos_iter integer,
    use_correlation boolean, result_summary_table text, variance double precision,
    out src oid, out srcq text, out r text, out c text, out v text,
    out pcq text, out meanq text, out sumq text, out gcols text[])
language plpgsql stable as $$
declare
    v_pc text[];
begin
    src := madlib_compat._existing_table(source_table, 'Source data table %s does not exist!');
    srcq := src::regclass::text;
    if (k is null and variance is null) or k <= 0 or variance <= 0 or variance > 1 then
        raise exception 'PCA error: components_param must be either a positive integer or a float in the range (0.0,1.0]!';
    end if;
    v_pc := madlib_compat._parse_qualified_name(pc_table);
    if v_pc is null then
        raise exception 'PCA error: Invalid output table prefix!';
    end if;
    if madlib_compat._output_exists(v_pc) or madlib_compat._output_exists(array[v_pc[1], v_pc[2] || '_mean']) then
        raise exception 'PCA error: Output table %/%_mean already exist!', pc_table, pc_table;
    end if;
    pcq := madlib_compat._quote_qualified_name(v_pc);
    meanq := madlib_compat._quote_qualified_name(array[v_pc[1], v_pc[2] || '_mean']);
    if lanczos_iter < 0 then
        raise exception 'PCA error: lanczos_iter can''t be negative! (Use zero for default value)  The provided value is %', lanczos_iter;
    end if;
    select m.r, m.c, m.v into r, c, v from madlib_compat._matrix_columns(src, source_table, row_id, col_id, val_id) m;
    if coalesce(col_dim, 0) = 0 then   -- MADlib tests `not col_dim`: 0 counts as missing
        raise exception 'PCA error: Column dimensions should be provided if using sparse matrices!';
    end if;
    if coalesce(row_dim, 0) = 0 then
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
    sumq := madlib_compat._summary_table(result_summary_table);
    gcols := madlib_compat._grouping_columns(src, grouping_cols);
    if gcols is null then
        raise exception 'PCA error: One or more grouping columns in % do not exist!', grouping_cols;
    end if;
    if k > least(row_dim, col_dim) then
        raise exception 'PCA error: k cannot be larger than min(row_dim, col_dim)!';
    end if;
end
$$;

-- pca_sparse_project's arguments, in MADlib's order. Returns the source, the model's tables
-- (oids and quoted names), the quoted output tables and the source's columns.
create or replace function madlib_compat._pca_project_args(
    source_table text, pc_table text, out_table text, row_id text, col_id text, val_id text,
    row_dim integer, col_dim integer, residual_table text, result_summary_table text,
    out src oid, out srcq text, out pcrel oid, out pcq text, out meanq text,
    out outq text, out resq text, out sumq text, out r text, out c text, out v text)
language plpgsql stable as $$
declare
    v_pc text[];
begin
    src := madlib_compat._existing_table(source_table, 'Source data table does not exist!');
    pcrel := madlib_compat._existing_table(pc_table, 'Principal comp. table does not exist!');
    v_pc := madlib_compat._parse_qualified_name(pc_table);
    meanq := madlib_compat._existing_table(
        madlib_compat._quote_qualified_name(array[v_pc[1], v_pc[2] || '_mean']),
        'Source data table column means does not exist!')::regclass::text;
    srcq := src::regclass::text;
    pcq := pcrel::regclass::text;
    outq := madlib_compat._new_table(out_table, 'Invalid output table name.', 'Output table %s already exists!');
    sumq := madlib_compat._summary_table(result_summary_table);
    if residual_table is not null then
        resq := madlib_compat._new_table(residual_table, 'Invalid residual table name!', 'Residual table %s already exists!');
    end if;
    select m.r, m.c, m.v into r, c, v from madlib_compat._matrix_columns(src, source_table, row_id, col_id, val_id) m;
    if not (row_dim > 0 and col_dim > 0) then
        raise exception 'PCA error: row_dim/col_dim should be positive integer';
    end if;
end
$$;
{% endraw %}
{% endmacro %}
