"""madlib_compat against the real Apache MADlib, in a database of its own with both installed
(conftest's `madlib_database`: MADlib from TA_MADLIB_TARBALL, skipped when there is none).

- random shapes: both decompose the same sparse matrices (components up to sign, std_dev,
  proportion, means, projection, residual);
- bad input: the same error, case by case (and where compat deliberately differs, what MADlib
  does instead);
- the project end to end: `dbt run` with `pca_backend: compat` and with `auto` on one lake
  gives the same marts, `published` outliers included, and `auto` called MADlib there.
"""
from __future__ import annotations

import datetime as dt
import re
import uuid

import numpy as np
import psycopg2
import pytest
from conftest import DbtProject, new_schema

from _pca_reference import load_sparse, madlib_compat_ddl, reference, vector_tolerance

BACKENDS = ("madlib", "madlib_compat")


def _connect(env: dict[str, str]):
    conn = psycopg2.connect(host=env.get("PGHOST"), port=env.get("PGPORT"), user=env.get("PGUSER"),
                            dbname=env["PGDATABASE"], password=env.get("PGPASSWORD"))
    conn.autocommit = True
    return conn


@pytest.fixture(scope="module")
def madlib_env(madlib_database):
    with _connect(madlib_database) as conn, conn.cursor() as cur:
        cur.execute(madlib_compat_ddl())     # this checkout's, whatever a dbt run installed
    return madlib_database


@pytest.fixture()
def db(madlib_env):
    """A cursor in the MADlib database, search_path at a fresh schema of this test's own."""
    conn = _connect(madlib_env)
    cur = conn.cursor()
    schema = f"ml_{uuid.uuid4().hex[:10]}"
    cur.execute(f"create schema {schema}; set search_path to {schema}, public")
    yield cur
    cur.execute(f"drop schema {schema} cascade")
    conn.close()


def sparse_random(rng, n, m, density=0.35, scale=5.0):
    return np.round(rng.random((n, m)) * scale * (rng.random((n, m)) < density), 6)


def _fetch(cur, sql):
    cur.execute(sql)
    return cur.fetchall()


# --------------------------------------------------------------- random shapes
@pytest.mark.parametrize("shape", [(40, 12), (12, 40), (15, 15), (30, 200), (200, 9)])
@pytest.mark.parametrize("components", [3, 0.8])
def test_random_sparse_agrees_with_madlib(db, shape, components):
    """The shapes of test_madlib_compat's numpy agreement, against MADlib: the same number of
    components, std_dev and proportion to 1e-8 (relative), vectors up to sign within the
    eigenvector bound, same means; projection and residual of the same data too."""
    rng = np.random.default_rng([*shape, int(components * 10)])
    X = sparse_random(rng, *shape)
    n, m = shape
    load_sparse(db, "m", X)
    comp_sql = "%s::integer" if isinstance(components, int) else "%s::double precision"
    for schema in BACKENDS:
        db.execute(f"select {schema}.pca_sparse_train('m', %s, 'row_id', 'col_id', 'val', %s, %s, {comp_sql})",
                   (f"pc_{schema}", n, m, components))
        db.execute(f"select {schema}.pca_sparse_project('m', %s, %s, 'row_id', 'col_id', 'val', %s, %s, %s, %s)",
                   (f"pc_{schema}", f"proj_{schema}", n, m, f"res_{schema}", f"psum_{schema}"))
    ours, theirs = (_fetch(db, f"select row_id, principal_components, std_dev, proportion from pc_{s} order by row_id")
                    for s in ("madlib_compat", "madlib"))
    assert [r[0] for r in ours] == [r[0] for r in theirs] and ours
    _, s, _ = reference(X)
    signs = []
    for (_, v_ours, sd_ours, p_ours), (row_id, v_theirs, sd_theirs, p_theirs) in zip(ours, theirs):
        assert abs(sd_ours - sd_theirs) <= 1e-8 * sd_theirs, row_id
        assert abs(p_ours - p_theirs) <= 1e-8 * p_theirs, row_id
        v_ours, v_theirs = np.asarray(v_ours), np.asarray(v_theirs)
        sign = np.sign(v_ours @ v_theirs)
        # both are within the bound of the exact vector, so within twice of each other
        assert np.max(np.abs(sign * v_ours - v_theirs)) <= 2 * vector_tolerance(s, row_id - 1, min(n, m)), row_id
        signs.append(sign)
    mean_ours, mean_theirs = (np.asarray(_fetch(db, f"select column_mean from pc_{s}_mean")[0][0])
                              for s in ("madlib_compat", "madlib"))
    np.testing.assert_allclose(mean_ours, mean_theirs, rtol=1e-12, atol=1e-13 * np.abs(X).max())
    proj_ours, proj_theirs = (np.array([r[0] for r in _fetch(db, f"select row_vec from proj_{s} order by row_id")])
                              for s in ("madlib_compat", "madlib"))
    scale = max(np.abs(proj_theirs).max(), 1.0)
    np.testing.assert_allclose(proj_ours * np.array(signs), proj_theirs, rtol=0, atol=1e-8 * scale)
    res_ours, res_theirs = (np.array([r[0] for r in _fetch(db, f"select row_vec from res_{s} order by row_id")])
                            for s in ("madlib_compat", "madlib"))
    np.testing.assert_allclose(res_ours, res_theirs, rtol=0, atol=1e-8 * max(np.abs(X).max(), 1.0))
    norm_ours, norm_theirs = (_fetch(db, f"select residual_norm, relative_residual_norm from psum_{s}")[0]
                              for s in ("madlib_compat", "madlib"))
    np.testing.assert_allclose(norm_ours, norm_theirs, rtol=1e-8, atol=1e-10)


# ------------------------------------------------------------------- bad input
SETUP = """
create table m (row_id int, col_id int, val float8);
insert into m select r, c, (r * 7 + c * 3) % 5 + 1 from generate_series(1, 6) r, generate_series(1, 8) c
    where (r + c) % 3 <> 0;
create table empty (row_id int, col_id int, val float8);
create table constant (row_id int, col_id int, val float8);
insert into constant select r, 1, 5 from generate_series(1, 6) r;
create table row_zero (row_id int, col_id int, val float8);
insert into row_zero values (1, 1, 1), (0, 2, 3), (2, 2, 2);
create table dup (row_id int, col_id int, val float8);
insert into dup values (1, 1, 1), (1, 1, 3), (2, 2, 2);
create table rank_one (row_id int, col_id int, val float8);
insert into rank_one select r, c, r * c from generate_series(1, 6) r, generate_series(1, 8) c;
create table taken_mean (x int);
"""

TRAIN = "pca_sparse_train('{src}', '{out}', 'row_id', 'col_id', 'val', {dims}, {k}{more})"
PROJECT = "pca_sparse_project('{src}', '{pc}', '{out}', 'row_id', 'col_id', 'val', {dims}{more})"

# (case, call) where both must fail with the same message (a table name in parentheses, when
# MADlib names its temporary copy of the input, is compared as "(…)").
SAME_ERROR = [
    ("missing source table", TRAIN.format(src="nope", out="{o}", dims="6, 8", k=2, more="")),
    ("missing row column", TRAIN.format(src="m", out="{o}", dims="6, 8", k=2, more="").replace("'row_id'", "'rid'")),
    ("missing col column", TRAIN.format(src="m", out="{o}", dims="6, 8", k=2, more="").replace("'col_id'", "'cid'")),
    ("missing val column", TRAIN.format(src="m", out="{o}", dims="6, 8", k=2, more="").replace("'val'", "'v'")),
    ("grouping column missing", TRAIN.format(src="m", out="{o}", dims="6, 8", k=2, more=", 'g'")),
    ("row id below 1", TRAIN.format(src="row_zero", out="{o}", dims="6, 8", k=2, more="")),
    ("k larger than min(row_dim, col_dim)", TRAIN.format(src="m", out="{o}", dims="6, 8", k=7, more="")),
    ("k zero", TRAIN.format(src="m", out="{o}", dims="6, 8", k=0, more="")),
    ("k negative", TRAIN.format(src="m", out="{o}", dims="6, 8", k=-1, more="")),
    ("proportion zero", TRAIN.format(src="m", out="{o}", dims="6, 8", k="0.0", more="")),
    ("proportion above one", TRAIN.format(src="m", out="{o}", dims="6, 8", k="1.5", more="")),
    ("proportion negative", TRAIN.format(src="m", out="{o}", dims="6, 8", k="-0.5", more="")),
    ("existing output table", TRAIN.format(src="m", out="trained", dims="6, 8", k=2, more="")),
    ("existing mean table", TRAIN.format(src="m", out="taken", dims="6, 8", k=2, more="")),
    ("existing summary table", TRAIN.format(src="m", out="{o}", dims="6, 8", k=2, more=", null, 0, false, 'm'")),
    ("row_dim zero", TRAIN.format(src="m", out="{o}", dims="0, 8", k=2, more="")),
    ("row_dim negative", TRAIN.format(src="m", out="{o}", dims="-1, 8", k=2, more="")),
    ("col_dim null", TRAIN.format(src="m", out="{o}", dims="6, null", k=2, more="")),
    ("correlation", TRAIN.format(src="m", out="{o}", dims="6, 8", k=2, more=", null, 0, true")),
    ("lanczos_iter negative", TRAIN.format(src="m", out="{o}", dims="6, 8", k=2, more=", null, -1")),
    ("project: missing model", PROJECT.format(src="m", pc="nope", out="{o}", dims="6, 8", more="")),
    ("project: missing source", PROJECT.format(src="nope", pc="trained", out="{o}", dims="6, 8", more="")),
    ("project: missing column", PROJECT.format(src="m", pc="trained", out="{o}", dims="6, 8", more="").replace("'val'", "'v'")),
    ("project: existing output", PROJECT.format(src="m", pc="trained", out="m", dims="6, 8", more="")),
    ("project: existing residual", PROJECT.format(src="m", pc="trained", out="{o}", dims="6, 8", more=", 'm'")),
    ("project: existing summary", PROJECT.format(src="m", pc="trained", out="{o}", dims="6, 8", more=", null, 'm'")),
    ("project: col_dim mismatch", PROJECT.format(src="m", pc="trained", out="{o}", dims="6, 9", more="")),
    ("project: row_dim zero", PROJECT.format(src="m", pc="trained", out="{o}", dims="0, 8", more="")),
]


def _outcome(cur, schema: str, call: str, out: str) -> tuple[str, str | int, str | None]:
    """('error', normalised message, SQLSTATE) or ('ok', rows in the output table, None)."""
    trained = "trained_" + schema
    try:
        cur.execute(f"select {schema}.{call.format(o=out).replace('trained', trained)}")
    except psycopg2.Error as exc:
        message = exc.diag.message_primary or str(exc)
        message = re.sub(r"^((spiexceptions\.\w+|plpy\.\w+): )+", "", message.strip())
        message = re.sub(r"\s+", " ", message).replace(trained, "trained")
        message = re.sub(r"\((pg_temp\.__madlib_temp_\w+|\w+)\)", "(…)", message)
        return "error", message, exc.pgcode
    return "ok", len(_fetch(cur, f"select * from {out}")), None


@pytest.fixture()
def bad_inputs(db):
    db.execute(SETUP)
    for schema in BACKENDS:
        db.execute(f"select {schema}.pca_sparse_train('m', 'trained_{schema}', 'row_id', 'col_id', 'val', 6, 8, 2)")
    return db


def test_bad_input_fails_as_in_madlib(bad_inputs):
    """Every case at once (MADlib's ~1-2 s per call): the same outcome and message."""
    differ = []
    for case, call in SAME_ERROR:
        theirs = _outcome(bad_inputs, "madlib", call, "out_m")
        ours = _outcome(bad_inputs, "madlib_compat", call, "out_c")
        assert theirs[0] == "error", (case, theirs)
        if ours[:2] != theirs[:2]:
            differ.append((case, theirs, ours))
    assert not differ, differ


def test_where_compat_deliberately_differs(bad_inputs):
    """What MADlib does instead, case by case, so a change on either side shows."""
    cur = bad_inputs
    # A matrix without variance (no entries, or every row the same): both fail with the same
    # SQLSTATE (division_by_zero), MADlib from dividing by the zero total, ours saying why.
    for table in ("empty", "constant"):
        call = TRAIN.format(src=table, out="{o}", dims="6, 8", k=2, more="")
        theirs, ours = _outcome(cur, "madlib", call, "z_m"), _outcome(cur, "madlib_compat", call, "z_c")
        assert theirs == ("error", "division by zero", "22012"), theirs
        assert ours[0] == "error" and ours[2] == "22012", ours
        assert "has no variance (no entries, or all rows equal)" in ours[1]
    # A duplicated entry: MADlib lists them (psql-style table) after the same first sentence.
    call = TRAIN.format(src="dup", out="{o}", dims="6, 8", k=2, more="")
    theirs, ours = _outcome(cur, "madlib", call, "d_m"), _outcome(cur, "madlib_compat", call, "d_c")
    assert ours[:2] == ("error", "Matrix error: Following entries are duplicated in sparse matrix (…)"), ours
    assert theirs[1].startswith(ours[1] + ". (Displaying a maximum of 20 entries) row_id | col_id"), theirs
    # Indices above row_dim/col_dim: MADlib goes on with a matrix of another size (it appends
    # an explicit zero at (row_dim, col_dim), none in this table); ours refuses.
    cur.execute("create table beyond (row_id int, col_id int, val float8);"
                "insert into beyond select row_id, col_id, val from m where row_id < 6;"
                "insert into beyond values (7, 2, 3)")
    for call in (TRAIN.format(src="beyond", out="{o}", dims="6, 8", k=2, more=""),
                 TRAIN.format(src="beyond", out="{o}", dims="7, 7", k=2, more=""),
                 PROJECT.format(src="beyond", pc="trained", out="{o}", dims="6, 8", more="")):
        tag = str(uuid.uuid4().int % 10**6)
        theirs = _outcome(cur, "madlib", call, "b_m" + tag)
        assert theirs[0] == "ok", (call, theirs)
        ours = _outcome(cur, "madlib_compat", call, "b_c" + tag)
        assert ours[:2] == ("error", "Matrix error: Invalid index in matrix (…). "
                                     "All row and column indices must be in the range [1, DIM]"), ours
    # k above the rank: MADlib returns k rows whose extra ones are not principal components
    # (their proportions add to more than 1, with random values: MADlib starts its Lanczos
    # iteration from a random vector); ours returns the rank's components with MADlib's warning.
    cur.connection.notices.clear()
    for schema in BACKENDS:
        cur.execute(f"select {schema}.{TRAIN.format(src='rank_one', out='r_' + schema, dims='6, 8', k=3, more='')}")
    theirs = _fetch(cur, "select std_dev, proportion from r_madlib order by row_id")
    ours = _fetch(cur, "select std_dev, proportion from r_madlib_compat order by row_id")
    assert len(theirs) == 3 and sum(p for _, p in theirs) > 1 + 1e-6, theirs
    assert len(ours) == 1 and abs(ours[0][1] - 1) < 1e-12
    assert any("Outputing only 1 instead of 3" in n for n in cur.connection.notices)


# ------------------------------------------------------------- the whole project
MARTS = {   # mart -> columns left out (each run's own id; timings)
    "dim_days": ("run_id",), "dim_users": ("run_id",), "fct_pca_components": ("run_id",),
    "fct_pca_summary": ("run_id", "train_time_ms", "project_time_ms"), "fct_user_outliers": ("run_id",),
    "fct_user_spikes": ("run_id",), "fct_day_anomalies": ("run_id",),
}


class MadlibDbtProject(DbtProject):
    def __init__(self, schema, target_path, database_env):
        super().__init__(schema=schema, target_path=target_path)
        self.database_env = database_env

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.database_env}


# Every hour's centred matrix has full rank on this lake: on a rank-deficient one (a 24-user
# lake, whose night hours have few active users), and with many components kept on conftest's
# sample lake, MADlib's Lanczos returns spurious components that change from run to run
# (test_where_compat_deliberately_differs shows it on a small case).
LAKE = {"users": 80, "days": 10, "end": dt.date(2017, 3, 10), "seed": 18}


def _calls(cur) -> dict[str, int]:
    """Calls so far of pca_sparse_train/project per schema (dbt's sessions flush their
    statistics when they end, before `dbt run` returns)."""
    rows = _fetch(cur, "select schemaname || '.' || funcname, sum(calls) from pg_stat_user_functions "
                       "where funcname in ('pca_sparse_train', 'pca_sparse_project') group by 1")
    return {name: int(n) for name, n in rows}


@pytest.fixture(scope="module")
def builds(madlib_env, generated_lake, tmp_path_factory):
    """The project run (`dbt run`, every model) on one small lake with madlib_compat, its
    tables and views copied aside, then the PCA models and everything downstream run again with MADlib
    (the staging and counts are the same) with `pca_backend` at its default, auto. Gives
    backend -> schema, in the MADlib database, and the PCA calls of that second run."""
    lake = generated_lake("madlib", **LAKE)
    project = MadlibDbtProject(new_schema("mad"), tmp_path_factory.mktemp("madlib"), madlib_env)
    compat = project.schema + "_compat"
    lake_vars = {"lake_root": str(lake.resolve())}
    try:
        project.run("run-operation", "stage_external_sources", vars=lake_vars)
        project.run("run", vars={**lake_vars, "pca_backend": "compat"})
        with _connect(madlib_env) as conn, conn.cursor() as cur:
            cur.execute(f"create schema {compat}")
            for (table,) in _fetch(cur, "select table_name from information_schema.tables where table_schema = "
                                   f"'{project.schema}' and table_type in ('BASE TABLE', 'VIEW')"):
                # the marts are views of the published run: their rows are copied as tables
                cur.execute(f'create table {compat}."{table}" as select * from {project.schema}."{table}"')
            # count the calls of each backend's functions from here on (a superuser setting)
            cur.execute(f'alter database "{madlib_env["PGDATABASE"]}" set track_functions = \'pl\'')
            before = _calls(cur)
        # pca_backend left at its default, auto: MADlib is installed here
        # every mart's history too: a night is published whole (dim_runs), under the run's own id
        project.run("run", "--select", "tag:pca_hour+", "path:models/marts", vars=lake_vars)
        with _connect(madlib_env) as conn, conn.cursor() as cur:
            after = _calls(cur)
        calls = {name: after.get(name, 0) - before.get(name, 0) for name in after}
        yield {"madlib": project.schema, "compat": compat, "auto_calls": calls}
    finally:
        with _connect(madlib_env) as conn, conn.cursor() as cur:
            for schema in (project.schema, project.schema + "_lake", compat):
                cur.execute(f'drop schema if exists "{schema}" cascade')


@pytest.fixture()
def cursors(builds, madlib_env):
    """backend -> (cursor, its schema)."""
    conn = _connect(madlib_env)
    yield {backend: (conn.cursor(), builds[backend]) for backend in ("madlib", "compat")}
    conn.close()


def _table(cur, schema: str, table: str, leave_out=()) -> tuple[list[str], list[tuple]]:
    cur.execute("select column_name, data_type from information_schema.columns "
                "where table_schema = %s and table_name = %s order by ordinal_position", (schema, table))
    columns = [(c, t) for c, t in cur.fetchall() if c not in leave_out]
    keys = [f'"{c}"' for c, t in columns if t not in ("double precision", "numeric", "ARRAY", "real")]
    order = f' order by {", ".join(keys)}' if keys else ""
    cur.execute(f'select {", ".join(chr(34) + c + chr(34) for c, _ in columns)} from "{schema}"."{table}"{order}')
    return [c for c, _ in columns], cur.fetchall()


def _close(a, b, tol: float) -> bool:
    """Equal, numbers to `tol` (relative above 1), inside arrays and JSON values too."""
    if isinstance(b, dict):
        return isinstance(a, dict) and a.keys() == b.keys() and all(_close(a[k], b[k], tol) for k in b)
    if isinstance(b, list):
        return isinstance(a, list) and len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    if isinstance(b, (float, int)) and not isinstance(b, bool) or hasattr(b, "as_tuple"):
        return a is not None and abs(float(a) - float(b)) <= tol * max(1.0, abs(float(b)))
    return a == b


def _assert_rows_close(name, columns, ours, theirs, tol=1e-8):
    assert len(ours) == len(theirs) and ours, (name, len(ours), len(theirs))
    for row_ours, row_theirs in zip(ours, theirs):
        for column, a, b in zip(columns, row_ours, row_theirs):
            assert _close(a, b, tol), (name, column, row_ours, row_theirs)


def test_marts_equal_with_madlib_and_compat(cursors):
    """Every mart to 1e-8, `published` outliers included: components are oriented before
    the marts read them, and MADlib's own signs differ from ours on some components."""
    (mcur, madlib), (ccur, compat) = cursors["madlib"], cursors["compat"]
    for mart, leave_out in MARTS.items():
        columns, theirs = _table(mcur, madlib, mart, leave_out)
        _assert_rows_close(mart, columns, _table(ccur, compat, mart, leave_out)[1], theirs)
    published = _fetch(ccur, f"select count(*) from {compat}.fct_user_outliers where method = 'published'")
    assert published[0][0] > 0
    _, theirs = _table(mcur, madlib, "int_pca_components")
    _, ours = _table(ccur, compat, "int_pca_components")
    # (hour, rank, std_dev, eigenvalue, proportion, cumulative, component_sign, vector)
    assert len(ours) == len(theirs) >= 24
    assert any(a[6] != b[6] for a, b in zip(ours, theirs))   # MADlib's sign is random: some differ
    for row in ours + theirs:                                 # the convention: largest |loading| > 0
        vector = np.asarray(row[7])
        assert vector[np.argmax(np.abs(vector))] > 0, row[:2]


def test_hourly_pca_tables_agree(cursors):
    """The 24 hours' tables the backends wrote: components up to sign, std_dev, proportion,
    means, projections (up to the same sign), residuals, training and projection summaries."""
    (mcur, madlib), (ccur, compat) = cursors["madlib"], cursors["compat"]
    for hour in range(24):
        table = f"int_pca_hour_{hour:02d}"
        columns, theirs = _table(mcur, madlib, table)
        _, ours = _table(ccur, compat, table)
        signs = [float(np.sign(np.dot(a[1], b[1]))) for a, b in zip(ours, theirs)]
        ours = [(r[0], list(np.multiply(s, r[1])), *r[2:]) for r, s in zip(ours, signs)]
        _assert_rows_close(table, columns, ours, theirs)
        _assert_rows_close(table + "_mean", *_table(mcur, madlib, table + "_mean"), _table(ccur, compat, table + "_mean")[1])
        columns, theirs = _table(mcur, madlib, table + "_projection")
        _, ours = _table(ccur, compat, table + "_projection")
        _assert_rows_close(table + "_projection", columns, [(r[0], list(np.multiply(signs, r[1]))) for r in ours], theirs)
        for suffix, leave_out in (("_residual", ()), ("_summary", ("exec_time (ms)", "iter")),
                                  ("_projection_summary", ("exec_time",))):
            columns, theirs = _table(mcur, madlib, table + suffix, leave_out)
            _assert_rows_close(table + suffix, columns, _table(ccur, compat, table + suffix, leave_out)[1], theirs)


def test_auto_picks_madlib_where_installed(builds):
    """The second run left pca_backend at auto: its 24 hours called MADlib, never ours."""
    calls = builds["auto_calls"]
    assert calls.get("madlib.pca_sparse_train") == 24 and calls.get("madlib.pca_sparse_project") == 24, calls
    assert calls.get("madlib_compat.pca_sparse_train", 0) == 0 and calls.get("madlib_compat.pca_sparse_project", 0) == 0, calls
