"""numpy reference and database plumbing for the madlib_compat PCA tests."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from traffic_anomalies import macro_text

REPO = Path(__file__).resolve().parents[2]
EPS = np.finfo(float).eps


def madlib_compat_ddl() -> str:
    """The DDL exactly as `dbt run-operation install_madlib_compat` runs it (the macros rendered)."""
    return macro_text.madlib_compat_ddl()


def load_sparse(cur, table: str, X: np.ndarray, extra: dict | None = None,
                cols=("row_id", "col_id", "val")) -> None:
    """Create `table` and COPY the non-zeros of X as 1-based triples."""
    extra = extra or {}
    defs = ", ".join([f"{cols[0]} integer", f"{cols[1]} integer", f"{cols[2]} double precision"]
                     + [f"{k} {t}" for k, (t, _) in extra.items()])
    cur.execute(f"create table {table} ({defs})")
    append_sparse(cur, table, X, extra, cols)


def append_sparse(cur, table, X, extra=None, cols=("row_id", "col_id", "val")):
    extra = extra or {}
    r, c = np.nonzero(X)
    buf = io.StringIO()
    for a, b in zip(r, c):
        fields = [str(a + 1), str(b + 1), repr(float(X[a, b]))] + [str(v) for _, v in extra.values()]
        buf.write("\t".join(fields) + "\n")
    buf.seek(0)
    names = ", ".join(list(cols) + list(extra))
    cur.copy_expert(f"copy {table} ({names}) from stdin", buf)


def reference(X: np.ndarray):
    """Centred SVD: column means, singular values, right singular vectors."""
    mean = X.mean(axis=0)
    _, s, vt = np.linalg.svd(X - mean, full_matrices=False)
    return mean, s, vt


def sigma_tolerance(s: np.ndarray, i: int, n_small: int) -> float:
    """Honest error bound for singular value i.

    1e-8 relative, plus what any Gram-matrix method must lose: eigenvalues of
    the small Gram matrix carry an absolute error of about n*eps*sigma_1^2, so
    sigma_i = sqrt(lambda_i) is off by about n*eps*sigma_1^2/sigma_i. That term
    is far below 1e-8*sigma_i unless sigma_i < ~1e-4 sigma_1.
    """
    return 1e-8 * s[i] + 100 * n_small * EPS * s[0] ** 2 / s[i]


def vector_tolerance(s: np.ndarray, i: int, n_small: int) -> float:
    """Eigenvector error ~ |E| / gap, |E| ~ n*eps*sigma_1^2 (Davis-Kahan)."""
    lam = s ** 2
    others = np.delete(lam, i)
    gap = np.min(np.abs(others - lam[i])) if others.size else lam[i]
    return 1e-8 + 1000 * n_small * EPS * lam[0] / max(gap, EPS * lam[0])


def expected_k(s: np.ndarray, proportion: float, tol_rank: float = 1e-6) -> int:
    """MADlib's rule: the smallest k whose cumulative proportion reaches the target."""
    nz = int(np.sum(s > tol_rank * s[0])) if s.size and s[0] > 0 else 0
    cum = np.cumsum(s ** 2) / np.sum(s ** 2)
    for k in range(1, nz + 1):
        if cum[k - 1] >= proportion:
            return k
    return nz
