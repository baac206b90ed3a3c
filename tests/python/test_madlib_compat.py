"""madlib_compat.pca_sparse_train / pca_sparse_project against numpy, in the real database.

Every test builds its matrices with numpy, loads them as sparse triples, runs the
SQL implementation and compares real numbers with a centred numpy SVD.
"""
from __future__ import annotations

import os
import subprocess
import uuid

import numpy as np
import psycopg2
import pytest

from _pca_reference import (
    EPS,
    REPO,
    append_sparse,
    expected_k,
    load_sparse,
    madlib_compat_ddl,
    reference,
    sigma_tolerance,
    vector_tolerance,
)


def _connect():
    conn = psycopg2.connect("")  # PG* variables name the test database
    conn.autocommit = True
    return conn


@pytest.fixture(scope="module")
def installed():
    conn = _connect()
    cur = conn.cursor()
    # the lock dbt's on-run-start hook takes to install it: a dbt run in another test process
    # may be replacing the same functions (two at once fail with "tuple concurrently updated")
    cur.execute("select pg_advisory_lock(hashtext('traffic_anomalies.madlib_compat'))")
    try:
        cur.execute(madlib_compat_ddl())
    finally:
        cur.execute("select pg_advisory_unlock(hashtext('traffic_anomalies.madlib_compat'))")
    conn.close()
    return True


class _Cursor(psycopg2.extensions.cursor):
    schema: str = ""


@pytest.fixture()
def db(installed):
    """A cursor whose search_path starts with a fresh schema of this test's own."""
    conn = _connect()
    cur = conn.cursor(cursor_factory=_Cursor)
    schema = f"mc_{uuid.uuid4().hex[:10]}"
    cur.execute(f"create schema {schema}")
    cur.execute(f"set search_path to {schema}, public")
    cur.schema = schema
    yield cur
    cur.execute(f"drop schema {schema} cascade")
    conn.close()


def sparse_random(rng, n, m, density=0.35, scale=5.0):
    X = rng.random((n, m)) * scale * (rng.random((n, m)) < density)
    return np.round(X, 6)


def train(cur, source, out, X, components, summary=None, grouping=None, **kw):
    n, m = X.shape
    if isinstance(components, float):
        comp_sql = "%s::double precision"
    else:
        comp_sql = "%s::integer"
    cur.execute(
        f"select madlib_compat.pca_sparse_train(%s, %s, 'row_id', 'col_id', 'val', %s, %s, {comp_sql}, %s, 0, false, %s)",
        (source, out, n, m, components, grouping, summary),
    )


def fetch_pc(cur, table, where=""):
    cur.execute(f"select row_id, principal_components, std_dev, proportion from {table} {where} order by row_id")
    return cur.fetchall()


def assert_matches_numpy(rows, X, k_expected):
    n, m = X.shape
    mean, s, vt = reference(X)
    ns = min(n, m)
    assert [r[0] for r in rows] == list(range(1, k_expected + 1))
    total = np.sum(s ** 2)
    for row_id, pc, sd, prop in rows:
        i = row_id - 1
        sigma = sd * np.sqrt(n - 1)
        assert abs(sigma - s[i]) <= sigma_tolerance(s, i, ns), (row_id, sigma, s[i])
        # proportion = sigma^2 / total: same relative bound, doubled
        assert abs(prop - s[i] ** 2 / total) <= 2 * sigma_tolerance(s, i, ns) / s[i] * s[i] ** 2 / total
        v = np.asarray(pc)
        assert v.shape == (m,)
        assert abs(np.linalg.norm(v) - 1) < 1e-10
        sign = np.sign(v @ vt[i])
        assert np.max(np.abs(sign * v - vt[i])) <= vector_tolerance(s, i, ns), row_id


def assert_mean(cur, table, X, where=""):
    cur.execute(f"select column_mean from {table} {where}")
    (mean,) = cur.fetchone()
    np.testing.assert_allclose(mean, X.mean(axis=0), rtol=1e-12, atol=1e-14 * np.abs(X).max())


# --------------------------------------------------------------------- shapes
@pytest.mark.parametrize("shape", [(40, 12), (12, 40), (15, 15), (30, 200), (200, 9)])
@pytest.mark.parametrize("components", [3, 0.8])
def test_random_sparse_matches_numpy(db, shape, components):
    rng = np.random.default_rng(hash((shape, str(components))) % 2**32)
    X = sparse_random(rng, *shape)
    load_sparse(db, "m", X)
    train(db, "m", "pc", X, components)
    _, s, _ = reference(X)
    k = components if isinstance(components, int) else expected_k(s, components)
    assert k >= 1
    assert_matches_numpy(fetch_pc(db, "pc"), X, k)
    assert_mean(db, "pc_mean", X)


@pytest.mark.parametrize("shape", [(30, 3000), (3000, 12)])
@pytest.mark.parametrize("components", [4, 0.95])
def test_parallel_workers_match_numpy(db, shape, components):
    """The large-side product may run in parallel workers (partial sums per
    worker, opted in with madlib_compat.parallel_min_scan_size): forced here on
    a small table, the results still match numpy."""
    rng = np.random.default_rng([*shape, int(components * 100)])   # fixed: str hashes vary per process
    X = sparse_random(rng, *shape)
    load_sparse(db, "m", X)
    db.execute("show min_parallel_table_scan_size")
    before = db.fetchone()[0]
    db.execute("set parallel_setup_cost = 0; set parallel_tuple_cost = 0; "
               "set madlib_compat.parallel_min_scan_size = '0'; set max_parallel_workers_per_gather = 2")
    train(db, "m", "pc", X, components)
    db.execute("show min_parallel_table_scan_size")
    assert db.fetchone()[0] == before               # lowered for the product only
    db.execute("reset parallel_setup_cost; reset parallel_tuple_cost; "
               "reset madlib_compat.parallel_min_scan_size; reset max_parallel_workers_per_gather")
    _, s, _ = reference(X)
    k = components if isinstance(components, int) else expected_k(s, components)
    assert_matches_numpy(fetch_pc(db, "pc"), X, k)
    assert_mean(db, "pc_mean", X)


def test_many_seeds_full_spectrum(db):
    """All non-zero components (proportion 1.0) of several random matrices."""
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        n, m = rng.integers(3, 25, size=2)
        X = sparse_random(rng, n, m, density=rng.uniform(0.2, 0.9))
        if not np.any(X):
            continue
        load_sparse(db, f"m{seed}", X)
        train(db, f"m{seed}", f"pc{seed}", X, 1.0)
        _, s, _ = reference(X)
        rows = fetch_pc(db, f"pc{seed}")
        assert_matches_numpy(rows, X, expected_k(s, 1.0))
        # all components together explain everything
        assert abs(sum(r[3] for r in rows) - 1) < 1e-9


def test_integer_one_versus_float_one(db):
    rng = np.random.default_rng(7)
    X = sparse_random(rng, 10, 6)
    load_sparse(db, "m", X)
    db.execute("select madlib_compat.pca_sparse_train('m', 'one', 'row_id', 'col_id', 'val', 10, 6, 1)")
    db.execute("select madlib_compat.pca_sparse_train('m', 'all', 'row_id', 'col_id', 'val', 10, 6, 1.0)")
    assert len(fetch_pc(db, "one")) == 1
    assert len(fetch_pc(db, '"all"')) == 6


def test_rank_deficient_emits_only_nonzero_components(db):
    rng = np.random.default_rng(11)
    X = rng.normal(size=(12, 3)) @ rng.normal(size=(3, 25))   # rank 3, centred rank <= 3
    load_sparse(db, "m", X)
    db.connection.notices.clear()
    train(db, "m", "pc", X, 7)
    rows = fetch_pc(db, "pc")
    _, s, _ = reference(X)
    assert s[3] < 1e-12 * s[0]
    assert_matches_numpy(rows, X, 3)
    assert any("Outputing only 3 instead of 7" in msg for msg in db.connection.notices)


def test_all_zero_columns(db):
    rng = np.random.default_rng(12)
    X = sparse_random(rng, 9, 20, density=0.6)
    X[:, [0, 5, 6, 19]] = 0
    load_sparse(db, "m", X)
    train(db, "m", "pc", X, 4)
    rows = fetch_pc(db, "pc")
    assert_matches_numpy(rows, X, 4)
    for row in rows:
        assert all(row[1][j] == 0 for j in (0, 5, 6, 19))
    assert_mean(db, "pc_mean", X)


def test_single_nonzero_row(db):
    X = np.zeros((6, 10))
    X[2] = np.arange(1, 11) * (np.arange(10) % 3 != 0)
    load_sparse(db, "m", X)
    train(db, "m", "pc", X, 1)
    assert_matches_numpy(fetch_pc(db, "pc"), X, 1)


@pytest.mark.parametrize("setting", ["gram_wide_max", "gram_outer_max"])
@pytest.mark.parametrize("shape", [(30, 11), (11, 30)])
def test_tall_and_long_form_gram_paths_agree(db, setting, shape):
    """The Gram forms for a larger small side give the same numbers: the sparse self-join
    beyond madlib_compat.gram_wide_max, the non-zeros joined with the dense columns
    beyond madlib_compat.gram_outer_max (default: the outer-product form)."""
    rng = np.random.default_rng(13)
    X = sparse_random(rng, *shape)
    X[:, 3] = 0                                   # a column without any entry
    load_sparse(db, "m", X)
    db.execute(f"set madlib_compat.{setting} = 4")
    train(db, "m", "pc", X, 5)
    train(db, "m", "pp", X, 0.9)
    db.execute(f"reset madlib_compat.{setting}")
    assert_matches_numpy(fetch_pc(db, "pc"), X, 5)
    _, s, _ = reference(X)
    assert_matches_numpy(fetch_pc(db, "pp"), X, expected_k(s, 0.9))
    assert_mean(db, "pc_mean", X)


# ------------------------------------------------------------ proportion rule
def test_proportion_rule_first_component_99_1_percent(db):
    rng = np.random.default_rng(21)
    n, m = 30, 8
    t = rng.normal(size=n)
    direction = np.ones(m) / np.sqrt(m)
    noise = rng.normal(size=(n, m))
    noise -= noise.mean(0)
    noise -= np.outer(noise @ direction, direction)          # noise orthogonal to the signal ...
    t -= t.mean()
    noise -= np.outer(t, t @ noise) / (t @ t)                # ... on both sides
    # scale so that the first component explains 99.1% of the variance
    a = np.sqrt(0.991 / 0.009 * np.sum(noise ** 2) / np.sum(t ** 2))
    X = 10 + np.outer(a * t, direction) + noise
    _, s, _ = reference(X)
    first = s[0] ** 2 / np.sum(s ** 2)
    assert abs(first - 0.991) < 1e-9
    load_sparse(db, "m", X)
    train(db, "m", "p99", X, 0.99)
    train(db, "m", "p995", X, 0.995)
    rows99 = fetch_pc(db, "p99")
    assert len(rows99) == 1
    assert abs(rows99[0][3] - 0.991) < 1e-9
    assert len(fetch_pc(db, "p995")) == expected_k(s, 0.995) >= 2


def test_lanczos_iter_caps_proportion(db):
    rng = np.random.default_rng(22)
    X = sparse_random(rng, 20, 10)
    load_sparse(db, "m", X)
    db.execute("select madlib_compat.pca_sparse_train('m', 'pc', 'row_id', 'col_id', 'val', 20, 10, 1.0, null, 2)")
    assert len(fetch_pc(db, "pc")) == 2


# ------------------------------------------------------------------ grouping
def test_grouping_one_pca_per_group(db):
    rng = np.random.default_rng(31)
    mats = {"a": sparse_random(rng, 10, 25), "b": sparse_random(rng, 10, 25, density=0.7), "c": sparse_random(rng, 10, 25)}
    db.execute("create table g (row_id integer, col_id integer, val double precision, grp text, hour int)")
    for h, (name, X) in enumerate(mats.items()):
        append_sparse(db, "g", X, {"grp": ("text", name), "hour": ("int", h)})
    db.execute("select madlib_compat.pca_sparse_train('g', 'pc', 'row_id', 'col_id', 'val', 10, 25, 0.9, 'grp, hour', 0, false, 'summ')")
    for h, (name, X) in enumerate(mats.items()):
        _, s, _ = reference(X)
        rows = fetch_pc(db, "pc", f"where grp = '{name}' and hour = {h}")
        assert_matches_numpy(rows, X, expected_k(s, 0.9))
        assert_mean(db, "pc_mean", X, f"where grp = '{name}'")
    db.execute("select grp, iter from summ order by grp")
    assert [r[0] for r in db.fetchall()] == ["a", "b", "c"]
    db.execute("select count(*) from information_schema.columns where table_schema = %s and table_name = 'pc' and column_name in ('grp', 'hour')", (db.schema,))
    assert db.fetchone()[0] == 2


def test_grouped_projection(db):
    rng = np.random.default_rng(32)
    mats = {1: sparse_random(rng, 8, 12), 2: sparse_random(rng, 8, 12, density=0.8)}
    db.execute("create table g (row_id integer, col_id integer, val double precision, hour int)")
    for h, X in mats.items():
        append_sparse(db, "g", X, {"hour": ("int", h)})
    db.execute("select madlib_compat.pca_sparse_train('g', 'pc', 'row_id', 'col_id', 'val', 8, 12, 3, 'hour')")
    db.execute("select madlib_compat.pca_sparse_project('g', 'pc', 'proj', 'row_id', 'col_id', 'val', 8, 12)")
    for h, X in mats.items():
        V = np.array([r[1] for r in fetch_pc(db, "pc", f"where hour = {h}")])
        db.execute(f"select row_vec from proj where hour = {h} order by row_id")
        got = np.array([r[0] for r in db.fetchall()])
        np.testing.assert_allclose(got, (X - X.mean(0)) @ V.T, rtol=1e-9, atol=1e-10)


# ------------------------------------------------------------------ projection
def test_projection_residual_and_summary(db):
    rng = np.random.default_rng(41)
    X = sparse_random(rng, 14, 30)
    X[5] = 0                                                     # a row without any entry
    Y = sparse_random(rng, 14, 30)                               # new data projected on X's model
    load_sparse(db, "m", X)
    load_sparse(db, "new", Y)
    train(db, "m", "pc", X, 4)
    db.execute("select madlib_compat.pca_sparse_project('new', 'pc', 'proj', 'row_id', 'col_id', 'val', 14, 30, 'res', 'psum')")
    V = np.array([r[1] for r in fetch_pc(db, "pc")])
    mu = X.mean(0)
    Yc = Y - mu
    Z = Yc @ V.T
    R = Yc - Z @ V
    db.execute("select row_id, row_vec from proj order by row_id")
    rows = db.fetchall()
    assert [r[0] for r in rows] == list(range(1, 15))
    np.testing.assert_allclose(np.array([r[1] for r in rows]), Z, rtol=1e-10, atol=1e-11)
    db.execute("select row_id, row_vec from res order by row_id")
    np.testing.assert_allclose(np.array([r[1] for r in db.fetchall()]), R, rtol=1e-10, atol=1e-11)
    db.execute("select exec_time, residual_norm, relative_residual_norm from psum")
    exec_time, norm, rel = db.fetchone()
    assert exec_time >= 0
    assert abs(norm - np.linalg.norm(R)) < 1e-10 * np.linalg.norm(R)
    # MADlib divides by the norm of the input as given, not of the centred input
    assert abs(rel - np.linalg.norm(R) / np.linalg.norm(Y)) < 1e-10


def test_projection_onto_all_components_has_zero_residual(db):
    rng = np.random.default_rng(42)
    X = sparse_random(rng, 6, 9, density=0.8)
    load_sparse(db, "m", X)
    train(db, "m", "pc", X, 1.0)
    db.execute("select madlib_compat.pca_sparse_project('m', 'pc', 'proj', 'row_id', 'col_id', 'val', 6, 9, null, 'psum')")
    db.execute("select residual_norm, relative_residual_norm from psum")
    norm, rel = db.fetchone()
    assert norm < 1e-12 * np.linalg.norm(X)
    assert rel < 1e-12


def test_train_summary_table(db):
    rng = np.random.default_rng(43)
    X = sparse_random(rng, 16, 10)
    load_sparse(db, "m", X)
    train(db, "m", "pc", X, 3, summary="summ")
    db.execute('select rows_used, "exec_time (ms)", iter, recon_error, relative_recon_error, use_correlation from summ')
    rows_used, exec_ms, it, err, rel, corr = db.fetchone()
    _, s, _ = reference(X)
    rest = np.sum(s[3:] ** 2)
    assert (rows_used, it, corr) == (16, 3, False)
    assert exec_ms > 0
    assert abs(err - np.sqrt(rest / X.size)) < 1e-9 * np.sqrt(rest / X.size)
    assert abs(rel - np.sqrt(rest / np.sum(s ** 2))) < 1e-9


# ----------------------------------------------------------- names and types
def test_schema_qualified_and_quoted_names(db):
    rng = np.random.default_rng(51)
    X = sparse_random(rng, 9, 14)
    src_schema, out_schema = db.schema + "_src", db.schema + '_Out'
    db.execute(f'create schema {src_schema}; create schema "{out_schema}"')
    try:
        load_sparse(db, f'{src_schema}."Flows"', X, cols=("r", '"Col"', "v"))
        db.execute(
            "select madlib_compat.pca_sparse_train(%s, %s, 'r', '\"Col\"', 'v', 9, 14, 2, null, 0, false, %s)",
            (f'{src_schema}."Flows"', f'"{out_schema}".pc', f'"{out_schema}"."Summ"'),
        )
        assert_matches_numpy(fetch_pc(db, f'"{out_schema}".pc'), X, 2)
        assert_mean(db, f'"{out_schema}".pc_mean', X)
        db.execute(
            "select madlib_compat.pca_sparse_project(%s, %s, %s, 'r', '\"Col\"', 'v', 9, 14)",
            (f'{src_schema}."Flows"', f'"{out_schema}".pc', f'"{out_schema}".proj'),
        )
        db.execute(f'select count(*) from "{out_schema}".proj')
        assert db.fetchone()[0] == 9
        db.execute(f'select count(*) from "{out_schema}"."Summ"')
        assert db.fetchone()[0] == 1
    finally:
        db.execute(f'drop schema {src_schema} cascade; drop schema "{out_schema}" cascade')


def _column_types(cur, schema, table):
    cur.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = %s and table_name = %s order by ordinal_position",
        (schema, table),
    )
    return cur.fetchall()


def test_output_table_columns_match_madlib(db):
    rng = np.random.default_rng(52)
    X = sparse_random(rng, 8, 10)
    load_sparse(db, "m", X)
    train(db, "m", "pc", X, 2, summary="tsum")
    db.execute("select madlib_compat.pca_sparse_project('m', 'pc', 'proj', 'row_id', 'col_id', 'val', 8, 10, 'res', 'psum')")
    dbl, arr = "double precision", "ARRAY"
    assert _column_types(db, db.schema, "pc") == [
        ("row_id", "integer"), ("principal_components", arr), ("std_dev", dbl), ("proportion", dbl)]
    assert _column_types(db, db.schema, "pc_mean") == [("column_mean", arr)]
    assert _column_types(db, db.schema, "tsum") == [
        ("rows_used", "integer"), ("exec_time (ms)", "numeric"), ("iter", "integer"),
        ("recon_error", dbl), ("relative_recon_error", dbl), ("use_correlation", "boolean")]
    for t in ("proj", "res"):
        assert _column_types(db, db.schema, t) == [("row_id", "integer"), ("row_vec", arr)]
    assert _column_types(db, db.schema, "psum") == [
        ("exec_time", dbl), ("residual_norm", dbl), ("relative_residual_norm", dbl)]
    db.execute("select udt_name from information_schema.columns where table_schema = %s and data_type = 'ARRAY'", (db.schema,))
    assert {r[0] for r in db.fetchall()} == {"_float8"}


# -------------------------------------------------------------------- errors
def _error(cur, sql, params=()):
    with pytest.raises(psycopg2.Error) as exc:
        cur.execute(sql, params)
    return str(exc.value)


def test_errors_carry_madlib_messages(db):
    rng = np.random.default_rng(61)
    X = sparse_random(rng, 6, 8)
    load_sparse(db, "m", X)
    train(db, "m", "pc", X, 2)
    call = "select madlib_compat.pca_sparse_train('m', %s, 'row_id', 'col_id', 'val', 6, 8, %s::integer, null, 0, %s)"
    assert "PCA error: Output table pc/pc_mean already exist" in _error(db, call, ("pc", 2, False))
    assert "PCA error: k cannot be larger than min(row_dim, col_dim)" in _error(db, call, ("other", 7, False))
    assert "PCA error: Using the correlation matrix is not enabled" in _error(db, call, ("other", 2, True))
    assert "components_param must be either" in _error(db, call, ("other", 0, False))
    assert "components_param must be either" in _error(
        db, "select madlib_compat.pca_sparse_train('m', 'x', 'row_id', 'col_id', 'val', 6, 8, 1.5)")
    assert "PCA error: Source data table nope does not exist" in _error(
        db, "select madlib_compat.pca_sparse_train('nope', 'x', 'row_id', 'col_id', 'val', 6, 8, 2)")
    assert "PCA error: rid column does not exist in m" in _error(
        db, "select madlib_compat.pca_sparse_train('m', 'x', 'rid', 'col_id', 'val', 6, 8, 2)")
    assert "PCA error: Output table m already exists" in _error(
        db, "select madlib_compat.pca_sparse_project('m', 'pc', 'm', 'row_id', 'col_id', 'val', 6, 8)")
    assert "PCA error: Principal comp. table does not exist" in _error(
        db, "select madlib_compat.pca_sparse_project('m', 'nope', 'o', 'row_id', 'col_id', 'val', 6, 8)")


def test_hostile_identifiers_are_rejected_not_executed(db):
    rng = np.random.default_rng(62)
    X = sparse_random(rng, 6, 8)
    load_sparse(db, "m", X)
    db.execute("create table victim (x int)")
    hostile = "x; drop table victim"
    base = ["m", "pc", "row_id", "col_id", "val"]
    for pos, msg in [(0, "Source data table"), (1, "Invalid output table prefix"),
                     (2, "column does not exist"), (3, "column does not exist"), (4, "column does not exist")]:
        args = list(base)
        args[pos] = hostile
        text = _error(db, "select madlib_compat.pca_sparse_train(%s, %s, %s, %s, %s, 6, 8, 2)", tuple(args))
        assert msg in text, (pos, text)
    assert "Invalid result summary table name" in _error(
        db, "select madlib_compat.pca_sparse_train('m', 'pc', 'row_id', 'col_id', 'val', 6, 8, 2, null, 0, false, %s)", (hostile,))
    assert "do not exist" in _error(
        db, "select madlib_compat.pca_sparse_train('m', 'pc', 'row_id', 'col_id', 'val', 6, 8, 2, %s)", ("row_id) from victim; --",))
    train(db, "m", "pc", X, 2)
    assert "Invalid output table name" in _error(
        db, "select madlib_compat.pca_sparse_project('m', 'pc', %s, 'row_id', 'col_id', 'val', 6, 8)", (hostile,))
    db.execute("select count(*) from victim")       # still there
    assert db.fetchone()[0] == 0


def test_invalid_sparse_input_fails_atomically(db):
    X = np.arange(1, 13, dtype=float).reshape(3, 4)
    load_sparse(db, "m", X)
    db.execute("insert into m values (2, 3, 99)")   # duplicate (2, 3)
    assert "duplicated" in _error(db, "select madlib_compat.pca_sparse_train('m', 'pc', 'row_id', 'col_id', 'val', 3, 4, 2)")
    db.execute("select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = %s and relname like 'pc%%'", (db.schema,))
    assert db.fetchone()[0] == 0                     # no half-built output
    db.execute("delete from m where val = 99; insert into m values (4, 1, 1)")   # row 4 > row_dim 3
    assert "Invalid index in matrix" in _error(db, "select madlib_compat.pca_sparse_train('m', 'pc', 'row_id', 'col_id', 'val', 3, 4, 2)")


def test_help_functions(db):
    db.execute("select madlib_compat.pca_sparse_train(), madlib_compat.pca_sparse_train('usage'), "
               "madlib_compat.pca_sparse_project(), madlib_compat.pca_sparse_project('usage')")
    texts = db.fetchone()
    assert "pca_sparse_train('usage')" in texts[0]
    assert "components_param" in texts[1]
    assert "pca_sparse_project('usage')" in texts[2]
    assert "tbl_residual" in texts[3]


# ------------------------------------------------------------------------ dbt
def test_dbt_run_operation_installs_idempotently(installed, tmp_path):
    """The documented install path; run twice to show it is idempotent."""
    cmd = [str(REPO / ".venv" / "bin" / "dbt"), "run-operation", "install_madlib_compat",
           "--project-dir", str(REPO), "--profiles-dir", str(REPO), "--target-path", str(tmp_path / "target")]
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    for _ in range(2):
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    conn = _connect()
    cur = conn.cursor()
    cur.execute("select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace "
                "where n.nspname = 'madlib_compat' and p.proname = 'pca_sparse_train'")
    assert cur.fetchone()[0] == 13       # full form + 10 overloads + 2 help forms
    conn.close()


# ------------------------------------------------------------- eigensolver
@pytest.mark.parametrize("case", ["separated", "close_pair", "equal_pair", "rank_deficient", "zero"])
def test_leading_eigenvectors_path_matches_numpy(db, case):
    """_symeig_top with few vectors wanted (inverse iteration) against numpy's eigh."""
    rng = np.random.default_rng(71)
    n, k = 40, 5
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    w = {"separated": np.linspace(10, 0.5, n),
         "close_pair": np.r_[10, 10 - 1e-9, np.linspace(5, 0.5, n - 2)],
         "equal_pair": np.r_[10, 10, np.linspace(5, 0.5, n - 2)],
         "rank_deficient": np.r_[np.linspace(9, 5, 6), np.zeros(n - 6)],
         "zero": np.zeros(n)}[case]
    A = (q * w) @ q.T
    A = (A + A.T) / 2
    db.execute("select eigenvalues, vectors from madlib_compat._symeig_top(%s::float8[], %s, %s)", (A.ravel().tolist(), n, k))
    lam, vec = db.fetchone()
    ref_w, ref_v = np.linalg.eigh(A)
    ref_w, ref_v = ref_w[::-1], ref_v[:, ::-1]
    scale = max(abs(ref_w[0]), 1.0)
    assert np.max(np.abs(np.array(lam) - ref_w)) <= 1e3 * n * EPS * scale
    V = np.array(vec).reshape(n, n)[:k]
    np.testing.assert_allclose(V @ V.T, np.eye(k), atol=1e-10)          # orthonormal
    np.testing.assert_allclose(V @ A, np.array(lam)[:k, None] * V, atol=1e-10 * scale)   # eigenvectors
    for j in range(k):
        gap = np.min(np.abs(np.delete(ref_w, j) - ref_w[j]))
        if gap > 1e-6 * scale:                                            # determined up to sign
            assert np.max(np.abs(np.sign(V[j] @ ref_v[:, j]) * V[j] - ref_v[:, j])) < 1e-9


@pytest.mark.parametrize("setting", [None, "gram_wide_max", "gram_outer_max"])
def test_rows_sharing_no_column(db, setting):
    """Gram entries with no product at all (disjoint rows) are zeros in every Gram form."""
    X = np.zeros((6, 10))
    X[0, 0], X[1, 1], X[2, 2] = 1, 2, 3
    X[3, :5], X[4, 5:], X[5, ::2] = 1, 2, 1
    load_sparse(db, "m", X)
    if setting:
        db.execute(f"set madlib_compat.{setting} = 2")
    train(db, "m", "pc", X, 3)
    if setting:
        db.execute(f"reset madlib_compat.{setting}")
    assert_matches_numpy(fetch_pc(db, "pc"), X, 3)


# ------------------------------------------------- paths chosen by the shape
@pytest.mark.parametrize("shape, components", [((60, 400), 0.99), ((40, 90), 0.999), ((24, 300), 20)])
def test_most_components_of_a_wide_matrix(db, shape, components):
    """k close to row_dim: inverse iteration for (nearly) every eigenvector, then one
    set-based x = Q y; k = 20 of 24 takes the same path with k given."""
    rng = np.random.default_rng(sum(shape))
    X = sparse_random(rng, *shape, density=0.4)
    load_sparse(db, "m", X)
    train(db, "m", "pc", X, components)
    _, s, _ = reference(X)
    k = components if isinstance(components, int) else expected_k(s, components)
    assert k > shape[0] // 2
    assert_matches_numpy(fetch_pc(db, "pc"), X, k)


@pytest.mark.parametrize("rows, components", [(70, 0.999), (21, 3), (9, 8)])
def test_projection_residual_row_blocks(db, rows, components):
    """The residual is computed several rows per pass (fewer when k is large): row
    counts that are not a multiple of the block, and k from 3 to ~row_dim."""
    rng = np.random.default_rng(rows)
    m = 150
    X = sparse_random(rng, rows, m, density=0.4)
    load_sparse(db, "m", X)
    train(db, "m", "pc", X, components)
    db.execute("select madlib_compat.pca_sparse_project('m', 'pc', 'proj', 'row_id', 'col_id', 'val', %s, %s, 'res', 'psum')",
               (rows, m))
    V = np.array([r[1] for r in fetch_pc(db, "pc")])
    Xc = X - X.mean(0)
    Z = Xc @ V.T
    R = Xc - Z @ V
    db.execute("select row_id, row_vec from proj order by row_id")
    proj = db.fetchall()
    assert [r[0] for r in proj] == list(range(1, rows + 1))
    np.testing.assert_allclose(np.array([r[1] for r in proj]), Z, rtol=1e-10, atol=1e-10 * np.abs(Z).max())
    db.execute("select row_id, row_vec from res order by row_id")
    res = db.fetchall()
    assert [r[0] for r in res] == list(range(1, rows + 1))
    np.testing.assert_allclose(np.array([r[1] for r in res]), R, rtol=1e-9, atol=1e-9 * np.abs(Xc).max())
    db.execute("select residual_norm from psum")
    assert abs(db.fetchone()[0] - np.linalg.norm(R)) <= 1e-9 * np.linalg.norm(Xc)


def test_duplicate_entries_that_cancel_are_reported(db):
    """Duplicates are found by counting entries, not from their values."""
    X = np.arange(1, 21, dtype=float).reshape(4, 5)
    load_sparse(db, "m", X)
    db.execute("insert into m values (3, 2, 5), (3, 2, -5)")
    assert "duplicated" in _error(db, "select madlib_compat.pca_sparse_train('m', 'pc', 'row_id', 'col_id', 'val', 4, 5, 2)")
    db.execute("delete from m where col_id = 2 and row_id = 3")
    db.execute("insert into m values (3, 2, 0), (3, 2, 0)")          # explicit zeros, twice
    assert "duplicated" in _error(db, "select madlib_compat.pca_sparse_train('m', 'pc', 'row_id', 'col_id', 'val', 4, 5, 2)")


@pytest.mark.parametrize("k, prop", [(None, 0.9999), (30, None), (20, None)])
def test_clustered_eigenvalues_fall_back_to_ql_with_vectors(db, k, prop):
    """One dominant eigenvalue and a tight cluster: too large a group for inverse
    iteration, so QL with vectors (run again in place, or from scratch when Q was
    not accumulated) gives the wanted eigenpairs."""
    rng = np.random.default_rng(5)
    n = 40
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    w = np.r_[1000.0, np.linspace(1.02, 1.0, n - 1)]
    A = (q * w) @ q.T
    A = (A + A.T) / 2
    db.execute("select eigenvalues, vectors from madlib_compat._symeig_core(%s::float8[], %s, %s, %s)",
               (A.ravel().tolist(), n, k, prop))
    lam, vec = db.fetchone()
    ref_w = np.linalg.eigvalsh(A)[::-1]
    assert np.max(np.abs(np.array(lam) - ref_w)) <= 1e3 * n * EPS * ref_w[0]
    kk = k if k is not None else n          # the proportion needs (nearly) all of them here
    V = np.array(vec).reshape(n, n)[:kk]
    if prop is not None:
        kk = int(np.sum(np.any(V != 0, axis=1)))
        V = V[:kk]
        assert kk >= int(np.searchsorted(np.cumsum(ref_w) / ref_w.sum(), prop)) + 1
    np.testing.assert_allclose(V @ V.T, np.eye(kk), atol=1e-10)
    np.testing.assert_allclose(V @ A, np.array(lam)[:kk, None] * V, atol=1e-10 * ref_w[0])


# ------------------------------------------------------------- validation
TRAIN_ARGS = dict(src="m", pc="other", r="row_id", c="col_id", v="val", rd=6, cd=8, k=2, g=None, it=0,
                  corr=False, summ=None)
TRAIN_ERRORS = [  # (changed arguments, MADlib's message)
    (dict(src="nope"), "PCA error: Source data table nope does not exist!"),
    (dict(k=0), "PCA error: components_param must be either a positive integer or a float in the range (0.0,1.0]!"),
    (dict(pc="a.b.c"), "PCA error: Invalid output table prefix!"),
    (dict(pc="pc"), "PCA error: Output table pc/pc_mean already exist!"),
    (dict(it=-1), "PCA error: lanczos_iter can't be negative! (Use zero for default value)  The provided value is -1"),
    (dict(r="rid"), "PCA error: rid column does not exist in m!"),
    (dict(c=None), "PCA error: Column ID should be provided if value ID is input!"),
    (dict(v=None), "PCA error: Value ID should be provided if column ID is input!"),
    (dict(c="cid"), "PCA error: cid column does not exist in m!"),
    (dict(v="vid"), "PCA error: vid column does not exist in m!"),
    (dict(cd=0), "PCA error: Column dimensions should be provided if using sparse matrices!"),
    (dict(rd=0), "PCA error: Row dimensions should be provided if using sparse matrices!"),
    (dict(rd=-1), "PCA error: The row dimension must be larger than 0!"),
    (dict(cd=-1), "PCA error: The column dimension must be larger than 0!"),
    (dict(corr=True), "PCA error: Using the correlation matrix is not enabled! This value must be set to FALSE"),
    (dict(summ="a b"), "PCA error: Invalid result summary table name!"),
    (dict(summ="m"), "PCA error: Result summary table m already exists!"),
    (dict(g="nog"), "PCA error: One or more grouping columns in nog do not exist!"),
    (dict(k=7), "PCA error: k cannot be larger than min(row_dim, col_dim)!"),
]
PROJECT_ARGS = dict(src="m", pc="pc", out="o", r="row_id", c="col_id", v="val", rd=6, cd=8, res=None, summ=None)
PROJECT_ERRORS = [
    (dict(src="nope"), "PCA error: Source data table does not exist!"),
    (dict(pc="nope"), "PCA error: Principal comp. table does not exist!"),
    (dict(pc="lone"), "PCA error: Source data table column means does not exist!"),
    (dict(out="a.b.c"), "PCA error: Invalid output table name."),
    (dict(out="m"), "PCA error: Output table m already exists!"),
    (dict(summ="a b"), "PCA error: Invalid result summary table name!"),
    (dict(summ="m"), "PCA error: Result summary table m already exists!"),
    (dict(res="a b"), "PCA error: Invalid residual table name!"),
    (dict(res="m"), "PCA error: Residual table m already exists!"),
    (dict(r="rid"), "PCA error: rid column does not exist in m!"),
    (dict(c=None), "PCA error: Column ID should be provided if value ID is input!"),
    (dict(v=None), "PCA error: Value ID should be provided if column ID is input!"),
    (dict(c="cid"), "PCA error: cid column does not exist in m!"),
    (dict(v="vid"), "PCA error: vid column does not exist in m!"),
    (dict(rd=0), "PCA error: row_dim/col_dim should be positive integer"),
]


def _message(cur, sql, params) -> str:
    with pytest.raises(psycopg2.Error) as exc:
        cur.execute(sql, params)
    return exc.value.diag.message_primary


def test_every_argument_check_gives_madlib_message_and_creates_nothing(db):
    """Each check of pca_sparse_train and pca_sparse_project, one bad argument at a time: the
    exact message of MADlib's _validate_args, and no table left behind. The checks both
    functions share (source columns, summary table) give the same words in both."""
    rng = np.random.default_rng(63)
    X = sparse_random(rng, 6, 8)
    load_sparse(db, "m", X)
    train(db, "m", "pc", X, 2)
    db.execute("create table lone (row_id integer, principal_components double precision[])")
    db.execute("select count(*) from pg_tables where schemaname = %s", (db.schema,))
    tables = db.fetchone()[0]
    for changed, message in TRAIN_ERRORS:
        a = {**TRAIN_ARGS, **changed}
        got = _message(db, "select madlib_compat.pca_sparse_train(%s, %s, %s, %s, %s, %s, %s, %s::integer, %s, %s, %s, %s)",
                       (a["src"], a["pc"], a["r"], a["c"], a["v"], a["rd"], a["cd"], a["k"], a["g"], a["it"],
                        a["corr"], a["summ"]))
        assert got == message, changed
    for changed, message in PROJECT_ERRORS:
        a = {**PROJECT_ARGS, **changed}
        got = _message(db, "select madlib_compat.pca_sparse_project(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                       (a["src"], a["pc"], a["out"], a["r"], a["c"], a["v"], a["rd"], a["cd"], a["res"], a["summ"]))
        assert got == message, changed
    db.execute("select count(*) from pg_tables where schemaname = %s", (db.schema,))
    assert db.fetchone()[0] == tables
    # the same arguments, well formed, work: each failure above was that one argument
    db.execute("select madlib_compat.pca_sparse_project('m', 'pc', 'o', 'row_id', 'col_id', 'val', 6, 8, 'r', 's')")
    db.execute("select count(*) from o")
    assert db.fetchone()[0] == 6
