"""Benchmark of the in-database PCA (schema madlib_compat) against numpy.

24 hourly matrices of D days x U users (default 60 x 5000, ~2.9 million
non-zeros in all) are generated with a fixed recipe, COPYed into the database
and decomposed once per hour of day, with k = 5 components and with a 0.99
proportion of variance, as 24 separate calls, as the same calls spread over
two sessions at once (the nightly job runs hours in parallel) and as one call
grouped by hour. Each hourly model is then applied with pca_sparse_project (projection,
residual table and summary, as the hourly dbt materialization does). numpy
(centre + SVD, projection + residual) runs on the same matrices in the same
process, the results are checked against each other, and a JSON report plus a
markdown summary are written, with the machine's load average.

When the database has Apache MADlib (`--madlib TARBALL` installs a build into a database of
its own and runs there), MADlib's pca_sparse_train makes the same 24 per-hour calls, k = 5 and
0.99, checked against numpy too; the report gives madlib_compat's speed-up over MADlib.

The database comes from the standard PG* environment variables.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psycopg2

from traffic_anomalies import PROJECT_DIR
from traffic_anomalies.macro_text import madlib_compat_ddl  # the DDL install_madlib_compat runs

SEED = 12345
HOURS = 24
SCHEMA = "bench_pca"


def generate(days: int = 60, users: int = 5000, hours: int = HOURS, seed: int = SEED) -> list[np.ndarray]:
    """The benchmark matrices; the draws happen in exactly this order."""
    rng = np.random.default_rng(seed)
    p = np.clip(rng.normal(0.4, 0.1, users), 0.05, 0.95)
    lam = rng.gamma(2.0, 1.5, users)
    mats = []
    for _hour in range(hours):
        active = rng.random((days, users)) < p
        counts = 1 + rng.poisson(np.broadcast_to(lam, (days, users)))
        mats.append(np.where(active, counts, 0))
    return mats


def _copy_triples(cur, table: str, mats: list[np.ndarray], with_hour: bool) -> None:
    buf = io.StringIO()
    for hour, mat in enumerate(mats):
        rows, cols = np.nonzero(mat)
        vals = mat[rows, cols]
        prefix = f"{hour}\t" if with_hour else ""
        buf.writelines(f"{prefix}{r + 1}\t{c + 1}\t{v}\n" for r, c, v in zip(rows, cols, vals))
    buf.seek(0)
    names = "hour, row_id, col_id, val" if with_hour else "row_id, col_id, val"
    cur.copy_expert(f"copy {table} ({names}) from stdin", buf)


def _numpy_pca(mats: list[np.ndarray]) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
    t0 = time.perf_counter()
    svals, vts = [], []
    for mat in mats:
        x = mat.astype(float)
        _, s, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
        svals.append(s)
        vts.append(vt)
    return time.perf_counter() - t0, svals, vts


def _numpy_project(mats: list[np.ndarray], vts: list[np.ndarray], ks: list[int]) -> float:
    t0 = time.perf_counter()
    for mat, vt, k in zip(mats, vts, ks):
        x = mat.astype(float)
        xc = x - x.mean(axis=0)
        z = xc @ vt[:k].T
        r = xc - z @ vt[:k]
        np.linalg.norm(r)
    return time.perf_counter() - t0


def _compare_projection(cur, name: str, mat: np.ndarray, vt: np.ndarray, k: int) -> dict:
    """Projection against numpy with the database's own components; residual norm too."""
    x = mat.astype(float)
    cur.execute(f"select principal_components from {name} order by row_id")
    v = np.array([r[0] for r in cur.fetchall()])
    xc = x - x.mean(axis=0)
    z = xc @ v.T
    cur.execute(f"select row_vec from {name}_proj order by row_id")
    got = np.array([r[0] for r in cur.fetchall()])
    cur.execute(f"select residual_norm from {name}_psum")
    rnorm = cur.fetchone()[0]
    ref_rnorm = float(np.linalg.norm(xc - z @ v))
    scale = max(float(np.max(np.abs(z))), 1.0)
    # a residual that is rounding noise (k = rank) is compared at the data's scale
    rscale = max(ref_rnorm, 1e-6 * float(np.linalg.norm(xc)))
    return {"k": int(v.shape[0]), "projection_rel_err": float(np.max(np.abs(got - z))) / scale,
            "residual_norm_rel_err": abs(rnorm - ref_rnorm) / rscale}


def _train_in_sessions(dsn: str, comp: str, name: str, days: int, users: int, hours: int,
                       sessions: int = 2) -> float:
    """The hourly calls spread over `sessions` connections working at once, as the
    nightly job runs hours in parallel; wall seconds for all of them."""
    todo: queue.Queue[int] = queue.Queue()
    for hour in range(hours):
        todo.put(hour)
    errors: list[BaseException] = []
    conns = [psycopg2.connect(dsn) for _ in range(sessions)]
    for conn in conns:
        conn.autocommit = True

    def work(conn) -> None:
        try:
            with conn.cursor() as cur:
                while True:
                    try:
                        hour = todo.get_nowait()
                    except queue.Empty:
                        return
                    cur.execute(
                        f"select madlib_compat.pca_sparse_train(%s, %s, 'row_id', 'col_id', 'val', %s, %s, {comp})",
                        (f"{SCHEMA}.h{hour:02d}", f"{SCHEMA}.pc_{name}_s{sessions}_h{hour:02d}", days, users))
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(conn,)) for conn in conns]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t
    for conn in conns:
        conn.close()
    if errors:
        raise errors[0]
    return elapsed


def git_state() -> dict:
    """The commit measured, and whether the tree had uncommitted changes."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=PROJECT_DIR, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""
    return {"commit": git("rev-parse", "HEAD") or None,
            "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no"))}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _expected_k(s: np.ndarray, proportion: float) -> int:
    cum = np.cumsum(s ** 2) / np.sum(s ** 2)
    return int(np.searchsorted(cum, proportion) + 1)


def _compare(cur, table: str, where: str, s: np.ndarray, vt: np.ndarray, days: int) -> dict:
    cur.execute(f"select row_id, principal_components, std_dev from {table} {where} order by row_id")
    rows = cur.fetchall()
    sd_err = vec_err = 0.0
    for row_id, pc, sd in rows:
        i = row_id - 1
        ref = s[i] / np.sqrt(days - 1)
        sd_err = max(sd_err, abs(sd - ref) / ref)
        v = np.asarray(pc)
        vec_err = max(vec_err, float(np.max(np.abs(np.sign(v @ vt[i]) * v - vt[i]))))
    return {"k": len(rows), "std_dev_rel_err": sd_err, "component_abs_err": vec_err}


def _has_madlib(cur) -> bool:
    cur.execute("select count(*) > 0 from pg_proc as p join pg_namespace as n on p.pronamespace = n.oid"
                " where n.nspname = 'madlib' and p.proname = 'pca_sparse_train'")
    return bool(cur.fetchone()[0])


def _madlib_per_hour_calls(cur, variants: dict[str, str], days: int, users: int, hours: int,
                           svals: list[np.ndarray], vts: list[np.ndarray]) -> tuple[dict, dict]:
    """MADlib's pca_sparse_train on the same hourly tables, one call per hour: seconds per
    variant, and its agreement with numpy (MADlib's own accuracy, not a pass/fail of ours)."""
    timings, agreement = {}, {}
    for name, comp in variants.items():
        t = time.perf_counter()
        for hour in range(hours):
            cur.execute(
                f"select madlib.pca_sparse_train(%s, %s, 'row_id', 'col_id', 'val', %s, %s, {comp})",
                (f"{SCHEMA}.h{hour:02d}", f"{SCHEMA}.madlib_{name}_h{hour:02d}", days, users))
        timings[name] = time.perf_counter() - t
        checks = [(5 if name == "k5" else _expected_k(svals[hour], 0.99),
                   _compare(cur, f"{SCHEMA}.madlib_{name}_h{hour:02d}", "", svals[hour], vts[hour], days))
                  for hour in range(hours)]
        agreement[name] = {
            "k_matches_numpy": all(c["k"] == k for k, c in checks),
            "k_per_hour": [c["k"] for _, c in checks],
            "max_std_dev_rel_err": max(c["std_dev_rel_err"] for _, c in checks),
            "max_component_abs_err": max(c["component_abs_err"] for _, c in checks),
        }
    return timings, agreement


def run(dsn: str = "", out_path: str | os.PathLike = "bench/results/pca.json",
        days: int = 60, users: int = 5000, hours: int = HOURS, install: bool = True,
        keep: bool = False) -> dict:
    """Run the benchmark, write `out_path` (JSON) and the .md next to it, return the report."""
    mats = generate(days, users, hours)
    nnz = int(sum(int(np.count_nonzero(m)) for m in mats))
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    if install:
        cur.execute(madlib_compat_ddl())
    cur.execute("show server_version")
    pg_version = cur.fetchone()[0]

    # ---- load
    t0 = time.perf_counter()
    cur.execute(f"drop schema if exists {SCHEMA} cascade")
    cur.execute(f"create schema {SCHEMA}")
    cur.execute(f"create table {SCHEMA}.flows (hour int, row_id int, col_id int, val double precision)")
    _copy_triples(cur, f"{SCHEMA}.flows", mats, with_hour=True)
    for hour in range(hours):
        cur.execute(f"create table {SCHEMA}.h{hour:02d} (row_id int, col_id int, val double precision)")
        _copy_triples(cur, f"{SCHEMA}.h{hour:02d}", [mats[hour]], with_hour=False)
    cur.execute(f"analyze {SCHEMA}.flows")
    load_s = time.perf_counter() - t0

    # ---- numpy on the same matrices
    numpy_s, svals, vts = _numpy_pca(mats)

    # ---- in-database PCA
    variants = {"k5": "5::integer", "p099": "0.99::double precision"}
    timings: dict[str, dict[str, float]] = {"per_hour_calls": {}, "grouped_call": {}, "project_per_hour_calls": {},
                                            "per_hour_calls_2_sessions": {}}
    agreement: dict[str, dict] = {}
    ks_by_variant: dict[str, list[int]] = {}
    load_before = _load()
    for name, comp in variants.items():
        t = time.perf_counter()
        for hour in range(hours):
            cur.execute(
                f"select madlib_compat.pca_sparse_train(%s, %s, 'row_id', 'col_id', 'val', %s, %s, {comp})",
                (f"{SCHEMA}.h{hour:02d}", f"{SCHEMA}.pc_{name}_h{hour:02d}", days, users))
        timings["per_hour_calls"][name] = time.perf_counter() - t

        # the same calls over two sessions at once (the nightly job runs hours in parallel)
        timings["per_hour_calls_2_sessions"][name] = _train_in_sessions(dsn, comp, name, days, users, hours)

        # what the hourly materialization does next: projection, residual, summary
        t = time.perf_counter()
        for hour in range(hours):
            pc = f"{SCHEMA}.pc_{name}_h{hour:02d}"
            cur.execute(
                "select madlib_compat.pca_sparse_project(%s, %s, %s, 'row_id', 'col_id', 'val', %s, %s, %s, %s)",
                (f"{SCHEMA}.h{hour:02d}", pc, pc + "_proj", days, users, pc + "_res", pc + "_psum"))
        timings["project_per_hour_calls"][name] = time.perf_counter() - t

        t = time.perf_counter()
        cur.execute(
            f"select madlib_compat.pca_sparse_train(%s, %s, 'row_id', 'col_id', 'val', %s, %s, {comp}, 'hour')",
            (f"{SCHEMA}.flows", f"{SCHEMA}.pc_{name}_grouped", days, users))
        timings["grouped_call"][name] = time.perf_counter() - t

        checks = []
        for hour in range(hours):
            k_ref = 5 if name == "k5" else _expected_k(svals[hour], 0.99)
            per = _compare(cur, f"{SCHEMA}.pc_{name}_h{hour:02d}", "", svals[hour], vts[hour], days)
            grp = _compare(cur, f"{SCHEMA}.pc_{name}_grouped", f"where hour = {hour}", svals[hour], vts[hour], days)
            two = _compare(cur, f"{SCHEMA}.pc_{name}_s2_h{hour:02d}", "", svals[hour], vts[hour], days)
            checks.append((k_ref, per, grp, two))
        projections = [_compare_projection(cur, f"{SCHEMA}.pc_{name}_h{hour:02d}", mats[hour], vts[hour], checks[hour][0])
                       for hour in range(hours)]
        agreement[name] = {
            "k_matches_numpy": all(per["k"] == k_ref and grp["k"] == k_ref and two["k"] == k_ref
                                   for k_ref, per, grp, two in checks),
            "k_per_hour": [per["k"] for _, per, _, _ in checks],
            "max_std_dev_rel_err": max(max(c["std_dev_rel_err"] for c in cs) for _, *cs in checks),
            "max_component_abs_err": max(max(c["component_abs_err"] for c in cs) for _, *cs in checks),
            "max_projection_rel_err": max(p["projection_rel_err"] for p in projections),
            "max_residual_norm_rel_err": max(p["residual_norm_rel_err"] for p in projections),
        }
        ks_by_variant[name] = [k_ref for k_ref, *_ in checks]
    madlib = None
    if _has_madlib(cur):
        madlib_s, madlib_agreement = _madlib_per_hour_calls(cur, variants, days, users, hours, svals, vts)
        madlib = {
            "timings_s": {"per_hour_calls": madlib_s},
            "agreement": madlib_agreement,
            # how many times faster madlib_compat's per-hour calls are than MADlib's
            "compat_speedup": {name: madlib_s[name] / timings["per_hour_calls"][name] for name in variants},
            "ratio_vs_numpy": {name: madlib_s[name] / numpy_s for name in variants},
        }
    load_after = _load()
    numpy_project_s = {name: _numpy_project(mats, vts, ks) for name, ks in ks_by_variant.items()}
    if not keep:
        cur.execute(f"drop schema {SCHEMA} cascade")
    conn.close()

    ok = all(a["k_matches_numpy"] and a["max_std_dev_rel_err"] < 1e-8 and a["max_component_abs_err"] < 1e-8
             and a["max_projection_rel_err"] < 1e-8 and a["max_residual_norm_rel_err"] < 1e-8
             for a in agreement.values())
    report = {
        "benchmark": "pca",
        "params": {"days": days, "users": users, "hours": hours, "seed": SEED, "nonzeros": nnz},
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "postgres_version": pg_version,
            "python": platform.python_version(),
            "numpy": np.__version__,
            # 1/5/15-minute load averages when the timed part started and ended:
            # timings are only comparable between runs on a similarly idle machine
            "load_avg_before": load_before,
            "load_avg_after": load_after,
        },
        "code": git_state(),
        "load_s": load_s,
        "timings_s": {"madlib_compat": timings, "numpy_center_svd": numpy_s,
                      "numpy_project_residual": numpy_project_s},
        "ratios_vs_numpy": {
            mode: {k: v / (numpy_project_s[k] if mode.startswith("project") else numpy_s) for k, v in d.items()}
            for mode, d in timings.items()},
        "agreement": agreement,
        "agrees_with_numpy": ok,
        # Apache MADlib on the same matrices, when the database has it (else null)
        "madlib": madlib,
    }
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    return report


def _code_line(code: dict | None) -> list[str]:
    if not code or not code.get("commit"):
        return []
    dirty = " with uncommitted changes" if code.get("uncommitted_changes") else ""
    return [f"Code: commit {code['commit'][:10]}{dirty}."]


def markdown(report: dict) -> str:
    p, mach, t = report["params"], report["machine"], report["timings_s"]
    mc = t["madlib_compat"]
    lines = [
        "# PCA benchmark: madlib_compat (in-database) vs numpy",
        "",
        f"{p['hours']} hourly matrices of {p['days']} days x {p['users']} users, "
        f"{p['nonzeros']:,} non-zeros in all (seed {p['seed']}).",
        f"Machine: {mach['cpu_count']} CPUs, PostgreSQL {mach['postgres_version']}, numpy {mach['numpy']}.",
        *_code_line(report.get("code")),   # reports written before the commit was recorded lack it
        "",
        "| run | k = 5 | proportion 0.99 |",
        "| --- | ---: | ---: |",
        f"| madlib_compat, {p['hours']} calls (one per hour) | {mc['per_hour_calls']['k5']:.2f} s | {mc['per_hour_calls']['p099']:.2f} s |",
        f"| madlib_compat, 1 call grouped by hour | {mc['grouped_call']['k5']:.2f} s | {mc['grouped_call']['p099']:.2f} s |",
    ]
    if "per_hour_calls_2_sessions" in mc:   # reports written before this row existed lack it
        two = mc["per_hour_calls_2_sessions"]
        lines.append(f"| madlib_compat, {p['hours']} calls over 2 sessions (as the nightly runs hours in parallel) "
                     f"| {two['k5']:.2f} s | {two['p099']:.2f} s |")
    lines += [
        f"| numpy centre + SVD | {t['numpy_center_svd']:.2f} s | {t['numpy_center_svd']:.2f} s |",
        f"| madlib_compat pca_sparse_project + residual + summary, {p['hours']} calls "
        f"| {mc['project_per_hour_calls']['k5']:.2f} s | {mc['project_per_hour_calls']['p099']:.2f} s |",
        f"| numpy projection + residual | {t['numpy_project_residual']['k5']:.2f} s "
        f"| {t['numpy_project_residual']['p099']:.2f} s |",
        "",
        f"Load average (1/5/15 min) {'/'.join(map(str, mach['load_avg_before']))} at the start of the timed part, "
        f"{'/'.join(map(str, mach['load_avg_after']))} at its end.",
        "",
        f"Loading the triples with COPY took {report['load_s']:.2f} s (not included above).",
        "",
        "Agreement with numpy (all hours, every call style):",
        "",
    ]
    for name, a in report["agreement"].items():
        lines.append(
            f"- {name}: components per hour match numpy: {a['k_matches_numpy']} "
            f"(k = {sorted(set(a['k_per_hour']))}); max relative std_dev error {a['max_std_dev_rel_err']:.1e}; "
            f"max component error (up to sign) {a['max_component_abs_err']:.1e}; "
            f"projection error {a['max_projection_rel_err']:.1e}; "
            f"residual norm relative error {a['max_residual_norm_rel_err']:.1e}")
    lines.append("")
    lines += _madlib_lines(report)
    return "\n".join(lines)


def _madlib_lines(report: dict) -> list[str]:
    madlib = report.get("madlib")
    if not madlib:   # a database without MADlib, or a report written before it was measured
        return []
    p, mc = report["params"], report["timings_s"]["madlib_compat"]["per_hour_calls"]
    t, speed = madlib["timings_s"]["per_hour_calls"], madlib["compat_speedup"]
    numpy_s = report["timings_s"]["numpy_center_svd"]
    lines = [
        "## Apache MADlib on the same matrices",
        "",
        "| run | k = 5 | proportion 0.99 |",
        "| --- | ---: | ---: |",
        f"| MADlib pca_sparse_train, {p['hours']} calls (one per hour) | {t['k5']:.2f} s | {t['p099']:.2f} s |",
        f"| madlib_compat, the same calls | {mc['k5']:.2f} s | {mc['p099']:.2f} s |",
        f"| numpy centre + SVD | {numpy_s:.2f} s | {numpy_s:.2f} s |",
        f"| madlib_compat faster than MADlib | {speed['k5']:.1f}x | {speed['p099']:.1f}x |",
        "",
        "MADlib against numpy:",
        "",
    ]
    for name, a in madlib["agreement"].items():
        lines.append(
            f"- {name}: components per hour match numpy: {a['k_matches_numpy']} "
            f"(k = {sorted(set(a['k_per_hour']))}); max relative std_dev error {a['max_std_dev_rel_err']:.1e}; "
            f"max component error (up to sign) {a['max_component_abs_err']:.1e}")
    lines.append("")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `traffic-anomalies bench pca` (and of `python -m traffic_anomalies_dev.bench_pca`)."""
    parser.add_argument("--out", default=str(PROJECT_DIR / "bench" / "results" / "pca.json"),
                        help="JSON report path; a .md summary is written next to it (default bench/results/pca.json)")
    parser.add_argument("--days", type=int, default=60, help="rows per hourly matrix (default 60)")
    parser.add_argument("--users", type=int, default=5000, help="columns per hourly matrix (default 5000)")
    parser.add_argument("--hours", type=int, default=HOURS, help="number of hourly matrices (default 24)")
    parser.add_argument("--no-install", action="store_true", help="use the installed madlib_compat functions as they are")
    parser.add_argument("--keep", action="store_true", help=f"keep schema {SCHEMA} with data and results")
    parser.add_argument("--madlib", metavar="TARBALL",
                        help=f"install this Apache MADlib build into database {MADLIB_DATABASE} (same server) "
                             "and run there, MADlib measured too; without it MADlib is measured when the "
                             "database has it")


MADLIB_DATABASE = "traffic_anomalies_bench_madlib"


def run_args(args: argparse.Namespace) -> int:
    """Run with parsed options; exit code 0 when the database agrees with numpy."""
    dsn = ""
    if args.madlib:
        from traffic_anomalies import localdb

        print(localdb.install_madlib(args.madlib, MADLIB_DATABASE), file=sys.stderr)
        dsn = f"dbname={MADLIB_DATABASE}"
    report = run(dsn=dsn, out_path=args.out, days=args.days, users=args.users, hours=args.hours,
                 install=not args.no_install, keep=args.keep)
    sys.stdout.write(markdown(report))
    return 0 if report["agrees_with_numpy"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="traffic-anomalies bench pca", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_args(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
