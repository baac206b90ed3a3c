"""The nightly benchmark's yardsticks: bench/reference_pandas.py and bench/reference_duckdb.py
run on the same lake, the agreement of their hourly counts and outliers with the database
run's, and the staging parse plan."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from traffic_anomalies import PROJECT_DIR
from traffic_anomalies_dev.bench_support import connect, query, run_root

REFERENCE = PROJECT_DIR / "bench" / "reference_pandas.py"
# the references by name: the same outputs, the lake read and counted by each tool
REFERENCES = {"pandas": REFERENCE, "duckdb": PROJECT_DIR / "bench" / "reference_duckdb.py"}


# --- the pandas reference ----------------------------------------------------------------------


def _reference_module():
    spec = importlib.util.spec_from_file_location("reference_pandas", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("reference_pandas", module)
    spec.loader.exec_module(module)
    return module


def run_reference(lake: Path, run_date: dt.date, out_dir: Path, write_counts: bool = False,
                  tool: str = "pandas") -> dict:
    """bench/reference_<tool>.py in a subprocess; its peak RSS is that child's ru_maxrss, read by an
    intermediate interpreter that has no other child (so no other process's peak leaks in)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ref_cmd = [sys.executable, str(REFERENCES[tool]), "--lake", str(lake), "--run-date", run_date.isoformat(),
               "--out", str(out_dir)] + (["--write-counts"] if write_counts else [])
    wrapper = (
        "import json, resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        f"code = subprocess.run({ref_cmd!r}).returncode\n"
        "wall = time.perf_counter() - t\n"
        "print(json.dumps({'code': code, 'wall_s': wall, "
        "'maxrss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))\n"
    )
    done = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, cwd=PROJECT_DIR)
    if done.returncode != 0:
        raise RuntimeError(f"reference_{tool} failed:\n{done.stderr[-3000:]}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    if info["code"] != 0:
        raise RuntimeError(f"reference_{tool} exited {info['code']}:\n{done.stderr[-3000:]}")
    summary = json.loads((out_dir / "summary.json").read_text())
    return {"wall_s": info["wall_s"], "peak_rss_mb": round(info["maxrss_kb"] / 1024, 1),
            "stages_s": summary["timings_s"], "summary": summary, "out_dir": str(out_dir)}


# --- agreement ---------------------------------------------------------------------------------


def compare(schema: str, reference_out: Path, full_counts: bool = False, tool: str = "pandas") -> dict:
    """Hourly counts and outliers of the database run vs a reference run (`tool` names its keys)."""
    ref = _reference_module()
    summary = json.loads((reference_out / "summary.json").read_text())
    report: dict[str, Any] = {}

    # hourly counts: totals, per (day, hour), and (quick sizes) every row
    db_rows, db_flows, db_days, db_users = query(
        f'select count(*), sum(flow_count), count(distinct activity_date), count(distinct user_name) '
        f'from "{schema}".int_hourly_counts')[0]
    rc = summary["counts"]
    report["hourly_counts_totals"] = {
        "database": {"rows": db_rows, "flows": int(db_flows or 0), "days": db_days, "users": db_users},
        tool: rc,
        "equal": (db_rows, int(db_flows or 0), db_days, db_users) == (rc["rows"], rc["flows"], rc["days"], rc["users"]),
    }
    by_dh = pd.read_csv(reference_out / "counts_by_day_hour.csv")
    db_dh = pd.DataFrame(query(
        f'select activity_date::text, hour_of_day, count(*), sum(flow_count)::bigint '
        f'from "{schema}".int_hourly_counts group by 1, 2'),
        columns=["activity_date", "hour_of_day", "rows", "flows"])
    merged = by_dh.merge(db_dh, on=["activity_date", "hour_of_day"], how="outer", suffixes=("_pd", "_db"))
    diff = merged[(merged["rows_pd"] != merged["rows_db"]) | (merged["flows_pd"] != merged["flows_db"])]
    report["hourly_counts_by_day_hour"] = {"cells": len(merged), "differing_cells": len(diff),
                                           "examples": diff.head(5).astype(str).to_dict("records")}
    if full_counts and (reference_out / "hourly_counts.csv").exists():
        pc = pd.read_csv(reference_out / "hourly_counts.csv", keep_default_na=False)
        dc = pd.DataFrame(query(
            f'select activity_date::text, hour_of_day, user_name, flow_count from "{schema}".int_hourly_counts'),
            columns=["activity_date", "hour_of_day", "user_name", "flow_count"])
        m = pc.merge(dc, on=["activity_date", "hour_of_day", "user_name"], how="outer", suffixes=("_pd", "_db"))
        bad = m[m["flow_count_pd"] != m["flow_count_db"]]
        report["hourly_counts_rows"] = {"rows": len(m), "differing_rows": len(bad),
                                        "examples": bad.head(5).astype(str).to_dict("records")}

    # components kept per hour
    db_k = dict(query(f'select hour_of_day, components_kept from "{schema}".fct_pca_summary'))
    report["components_per_hour"] = {
        "database": [int(db_k.get(h, 0)) for h in range(24)], tool: summary["k_per_hour"],
        "equal": [int(db_k.get(h, 0)) for h in range(24)] == summary["k_per_hour"]}

    # outliers
    db_out = pd.DataFrame(query(
        f'select method, hour_of_day, user_name, component_rank, loading from "{schema}".fct_user_outliers'),
        columns=["method", "hour_of_day", "user_name", "component_rank", "loading"])
    pd_out = pd.read_csv(reference_out / "outliers.csv", keep_default_na=False)
    comps = np.load(reference_out / "components.npz")
    users = [str(u) for u in comps["users"]]
    pcas = [{"components": comps[f"h{h:02d}"], "proportion": None, "cumulative_proportion": None}
            for h in range(24)]
    # the database's components, columns put in the reference's user order, to align signs
    db_users = dict(query(f'select user_name, user_index from "{schema}".dim_users'))
    order = np.array([db_users.get(u, 0) - 1 for u in users])
    db_components: dict[int, np.ndarray] = {}
    for hour, rank, vec in query(f'select hour_of_day, component_rank, principal_components '
                                  f'from "{schema}".fct_pca_components order by 1, 2'):
        db_components.setdefault(hour, []).append(np.asarray(vec, dtype=float)[order])
    db_components = {h: np.vstack(v) for h, v in db_components.items()}
    published = ref.published_outliers(pcas, users, db_components)
    pd_sets = {  # the reference's lists
        "absolute_loading": pd_out[pd_out["method"] == "absolute_loading"],
        "published": published,
    }
    max_abs_diff = 0.0
    for h, db in db_components.items():
        mine = pcas[h]["components"]
        if db.shape == mine.shape and db.size:
            signs = np.where(np.einsum("ij,ij->i", mine, db) < 0, -1.0, 1.0)
            max_abs_diff = max(max_abs_diff, float(np.max(np.abs(mine * signs[:, None] - db))))
    report["component_max_abs_diff_up_to_sign"] = max_abs_diff
    key = ["hour_of_day", "user_name", "component_rank"]
    outliers_report = {}
    for method, frame in pd_sets.items():
        a = set(map(tuple, db_out[db_out["method"] == method][key].astype(str).to_numpy()))
        b = set(map(tuple, frame[key].astype(str).to_numpy()))
        outliers_report[method] = {
            "database": len(a), tool: len(b), "both": len(a & b),
            "only_database": sorted(a - b)[:5], f"only_{tool}": sorted(b - a)[:5],
            "jaccard": round(len(a & b) / len(a | b), 6) if (a | b) else 1.0,
            "equal": a == b,
        }
    outliers_report["published"]["note"] = ("components' signs aligned to the database's first "
                                            "(a component's sign is arbitrary)")
    report["outliers"] = outliers_report
    report["agree"] = bool(
        report["hourly_counts_totals"]["equal"] and not report["hourly_counts_by_day_hour"]["differing_cells"]
        and report["components_per_hour"]["equal"]
        and all(o["equal"] for o in outliers_report.values())
        and report.get("hourly_counts_rows", {}).get("differing_rows", 0) == 0)
    return report


# --- staging parse plan ------------------------------------------------------------------------


def _without_programs(plan: list[str]) -> list[str]:
    """The plan without file_fdw's multi-line `Foreign Program` texts (the awk reader, per partition)."""
    kept, skipping = [], False
    for line in plan:
        if "Foreign Program:" in line:
            skipping = True
            continue
        if skipping and re.match(r"\s*(->|[A-Z])", line):
            skipping = False
        if not skipping:
            kept.append(line)
    return kept


def explain_staging(schema: str, day: dt.date) -> dict:
    """EXPLAIN ANALYZE of the compiled staging select, for one lake day (nothing is written)."""
    # every shard compiles the same select (over its own days); shard 0's is measured
    compiled = next(run_root(schema).glob(
        "*/BuildStaging/compiled/traffic_anomalies/models/staging/lake/base/base_lake__flow_lines_shard_0.sql"), None)
    if compiled is None:
        return {"error": "compiled base_lake__flow_lines_shard_0.sql not found"}
    sql = compiled.read_text()
    sql = re.sub(r"where dt in \([^)]*\)|where false", f"where dt = '{day.isoformat()}'::date", sql, count=1)
    # The planner settings the model's pre_hook makes (without them the plan is another one,
    # quadratic in the size of the day).
    model = (PROJECT_DIR / "macros" / "staging" / "flow_lines_shard_model.sql").read_text()
    settings = re.findall(r"set local (\w+) = (\w+)", model)
    with connect() as conn, conn.cursor() as cur:
        cur.execute("set jit = off")
        for name, value in settings:
            cur.execute(f"set {name} = {value}")
        started = time.perf_counter()
        cur.execute("explain (analyze, buffers, timing off) " + sql)
        plan = _without_programs([r[0] for r in cur.fetchall()])
        elapsed = time.perf_counter() - started
        cur.execute(f"select count(*) from {schema}_lake.flows where dt = %s", (day,))
        read_started = time.perf_counter()
        lines = cur.fetchone()[0]
        cur.execute(f"select count(*) from {schema}_lake.flows where dt = %s", (day,))
        read_only = time.perf_counter() - read_started
    return {"day": day.isoformat(), "lines": lines, "explain_analyze_s": round(elapsed, 3),
            "read_only_s": round(read_only, 3), "settings": dict(settings), "plan": plan}


