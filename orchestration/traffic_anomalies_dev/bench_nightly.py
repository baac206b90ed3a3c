"""`traffic-anomalies bench nightly`: the whole nightly run against in-memory pandas and DuckDB pipelines.

One run writes bench/results/nightly.json and nightly.md:

1. full run   the nightly (Luigi + dbt, `traffic-anomalies nightly`) on a generated lake of
              --users x --days (default 10,000 x 60, ~20 M lines), timed, with the peak memory of
              its Python processes and of the database backends serving it; and
              bench/reference_pandas.py and bench/reference_duckdb.py on the same files;
              the hourly counts and outliers of each are compared with the database's.
2. incremental  one more lake day (the lake is generated with days + 1; the full run stops at
              day `days`) and the nightly for it, as a share of the full run.
3. PCA step   traffic_anomalies_dev.bench_pca (madlib_compat vs numpy), called as it is.
4. scaling    the full run at 1x, 2x, 4x of --scale-base users (the largest reuses step 1 when
              it is the same size).
5. profile    per step: process wall time vs the time dbt spent running nodes (the rest is
              interpreter start-up, project parse, connection and cache set-up); the slowest
              nodes from the run_results.json of every step; EXPLAIN ANALYZE of the staging
              parse on one day.

The database is the one the PG* variables name (else the project's own cluster), in schemas
of the benchmark's own (--schema, default bench_nightly; the scaling runs use <schema>_x<N>).
Helpers in bench_support, the pandas reference and the agreement checks in bench_reference.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import inspect
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from traffic_anomalies import PROJECT_DIR, localdb
from traffic_anomalies_dev.bench_pca import git_state
from traffic_anomalies_dev.bench_reference import compare, explain_staging, run_reference
from traffic_anomalies_dev.bench_support import (
    SEED, START, MemorySampler, drop_schema, ensure_lake, query, reset_schema, run_root, server_info,
)

DEFAULT_OUT = PROJECT_DIR / "bench" / "results" / "nightly.json"
DEFAULT_LAKE_DIR = PROJECT_DIR / "target" / "bench-lake"
QUICK = {"users": 300, "days": 30, "scale_base": 100, "pca_users": 300, "pca_days": 28}



# --- one nightly run ---------------------------------------------------------------------------


def run_nightly(schema: str, run_date: dt.date, lake: Path, workers: int, extra_env: dict | None = None) -> dict:
    """`traffic-anomalies nightly` in a subprocess (fresh interpreter, like cron), with memory."""
    env = {**os.environ, "TA_SCHEMA": schema, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **(extra_env or {})}
    log = run_root(schema) / f"bench-{run_date}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "traffic_anomalies.nightly", "nightly", "--date", run_date.isoformat(),
           "--lake", str(lake), "--workers", str(workers), "--local-scheduler"]
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=PROJECT_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        with MemorySampler(proc.pid) as sampler:
            code = proc.wait()
    wall = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"nightly {run_date} failed (exit {code}); see {log}:\n"
                           + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))
    return {"wall_s": wall, "memory": sampler.result(), "log": str(log),
            "steps": step_profile(schema, run_date)}


def step_profile(schema: str, run_date: dt.date) -> list[dict]:
    """Per step: process wall time (marker), dbt's own elapsed time and node time (run_results)."""
    rows = query(
        "select step, task_family, elapsed_s, finished_at, details from ta_meta.step_state "
        "where target_schema = %s and run_date = %s order by finished_at", (schema, run_date))
    steps = []
    for task_id, family, elapsed, finished, details in rows:
        step = {"task": task_id, "family": family,  # the step: BuildMarts, PcaHours…
                "wall_s": round(elapsed or 0.0, 3),
                "started": (finished - dt.timedelta(seconds=elapsed or 0.0)).isoformat(),
                "finished": finished.isoformat()}
        target = Path(details.get("target_path", "")) if details else None
        results = target / "run_results.json" if target else None
        if results and results.exists():
            data = json.loads(results.read_text())
            nodes = data.get("results", [])
            step["dbt_elapsed_s"] = round(float(data.get("elapsed_time") or 0.0), 3)
            step["node_time_s"] = round(sum(float(n.get("execution_time") or 0) for n in nodes), 3)
            step["startup_s"] = round(step["wall_s"] - step["dbt_elapsed_s"], 3)
            step["nodes"] = [
                {"id": n["unique_id"], "status": n["status"], "time_s": round(float(n.get("execution_time") or 0), 3),
                 "rows": (n.get("adapter_response") or {}).get("rows_affected")}
                for n in nodes
            ]
        steps.append(step)
    return steps


def summarise_steps(steps: list[dict], wall: float) -> dict:
    by_family: dict[str, dict[str, float]] = {}
    for s in steps:
        fam = by_family.setdefault(s["family"], {"count": 0, "wall_s": 0.0, "dbt_elapsed_s": 0.0,
                                                 "node_time_s": 0.0, "startup_s": 0.0})
        fam["count"] += 1
        for key in ("wall_s", "dbt_elapsed_s", "node_time_s", "startup_s"):
            fam[key] = round(fam[key] + s.get(key, 0.0), 3)
    # span of the PCA hours step: first start to last finish
    pca = [s for s in steps if s["family"] == "PcaHours"]
    span = None
    if pca:
        span = (max(dt.datetime.fromisoformat(s["finished"]) for s in pca)
                - min(dt.datetime.fromisoformat(s["started"]) for s in pca)).total_seconds()
    total_wall = sum(s["wall_s"] for s in steps)
    total_startup = sum(s.get("startup_s", 0.0) for s in steps)
    nodes = [(n["time_s"], n["id"], s["family"]) for s in steps for n in s.get("nodes", [])]
    nodes.sort(reverse=True)
    return {
        "by_family": by_family,
        "pca_hours_span_s": span,
        "dbt_process_wall_sum_s": round(total_wall, 3),
        "dbt_startup_sum_s": round(total_startup, 3),
        "dbt_startup_share_of_process_time": round(total_startup / total_wall, 3) if total_wall else None,
        "run_wall_s": round(wall, 3),
        "slowest_nodes": [{"id": i, "step": f, "time_s": t} for t, i, f in nodes[:15]],
    }



# --- the benchmark -----------------------------------------------------------------------------


@dataclasses.dataclass
class Options:
    users: int = 10_000
    days: int = 60
    scale_base: int = 2_500
    scales: tuple[int, ...] = (1, 2, 4)
    workers: int = 2
    schema: str = "bench_nightly"
    lake_dir: Path = DEFAULT_LAKE_DIR
    out: Path = DEFAULT_OUT
    pca_users: int = 2_500  # bench_pca size: users x the PCA window (4 x 24 trainings: keep it small)
    pca_days: int = 28
    skip_pca: bool = False
    skip_scaling: bool = False
    keep: bool = False
    quick: bool = False


def run(opts: Options) -> dict:
    t_bench = time.perf_counter()
    load: list[tuple[str, tuple[float, float, float]]] = [("start", os.getloadavg())]
    localdb.up()
    localdb.apply_connection_env()
    server = server_info()
    run_date = START + dt.timedelta(days=opts.days - 1)
    next_date = run_date + dt.timedelta(days=1)
    report: dict[str, Any] = {
        "benchmark": "nightly",
        "params": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(opts).items()},
                   "run_date": run_date.isoformat(), "incremental_date": next_date.isoformat(),
                   "start": START.isoformat(), "seed": SEED},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "mem_total_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
                    "python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__,
                    "postgres": server},
        "code": git_state(),
    }

    # 1. the full run and the pandas reference on the same lake (days + 1: step 2 adds the last)
    lake, gen_s = ensure_lake(opts.lake_dir, opts.users, opts.days + 1)
    report["lake"] = {"path": str(lake), "generate_s": gen_s,
                      "lines": json.loads((lake / "manifest.json").read_text())["totals"]["lines_with_headers"]}
    reset_schema(opts.schema)
    full = run_nightly(opts.schema, run_date, lake, opts.workers)
    load.append(("after full run", os.getloadavg()))
    full["profile"] = summarise_steps(full["steps"], full["wall_s"])
    ref_out = run_root(opts.schema) / "reference"
    reference = run_reference(lake, run_date, ref_out, write_counts=opts.quick)
    load.append(("after pandas", os.getloadavg()))
    duck_out = run_root(opts.schema) / "reference_duckdb"
    duck = run_reference(lake, run_date, duck_out, write_counts=opts.quick, tool="duckdb")
    load.append(("after duckdb", os.getloadavg()))
    report["full_run"] = {"database": full, "pandas": reference, "duckdb": duck,
                          "time_ratio_db_over_pandas": round(full["wall_s"] / reference["wall_s"], 2),
                          "time_ratio_db_over_duckdb": round(full["wall_s"] / duck["wall_s"], 2)}
    report["agreement"] = compare(opts.schema, ref_out, full_counts=opts.quick)
    report["agreement_duckdb"] = compare(opts.schema, duck_out, full_counts=opts.quick, tool="duckdb")
    report["staging_explain"] = explain_staging(opts.schema, run_date)
    save(report, opts, load, t_bench)

    # 2. the incremental night: one more day
    incremental = run_nightly(opts.schema, next_date, lake, opts.workers)
    incremental["profile"] = summarise_steps(incremental["steps"], incremental["wall_s"])
    load.append(("after incremental", os.getloadavg()))
    loaded = {s["family"]: s for s in incremental["steps"]}
    rows = {n["id"].split(".")[-1]: n["rows"] for s in incremental["steps"] for n in s.get("nodes", [])
            if n["id"].startswith("model.") and n["rows"] is not None}  # docs generate: no rows
    report["incremental"] = {
        "run": incremental,
        "share_of_full_run": round(incremental["wall_s"] / full["wall_s"], 3),
        "rows_written": {
            # base_lake__flow_lines is the union view of the staging shards: the shards write its rows
            "base_lake__flow_lines": sum(v for k, v in rows.items() if k.startswith("base_lake__flow_lines_shard_")),
            **{k: rows.get(k) for k in ("int_hourly_counts", "int_pca_input")}},
        "recomputed": {
            "staging": "only the new lake partition: lake_dates_to_load lists the days not loaded yet, "
                       "and the filter on dt is a literal list, so the other partitions' files are never opened",
            "staging tests": "only the rows of the latest load (the new day): the staging tests' `where: latest_load` "
                             "filters on loaded_at through its index (var staging_tests_scope=all tests every row); "
                             "the reconciliation line-counts only that day's lake files (day partitions, "
                             "pruned as the test runs)",
            "int_hourly_counts": "only the days that received flows since the last build (the new day, and the day "
                                 "before when late flows cross midnight UTC): delete+insert by activity_date",
            "pca": "all 24 hours: the 28-day window moved by one day, so every hourly matrix changed",
            "marts": "rebuilt from the 24 PCAs (tables, not incremental)",
        },
        "steps_run": sorted(loaded),
    }
    save(report, opts, load, t_bench)
    if not opts.keep:
        shutil.rmtree(ref_out, ignore_errors=True)
        shutil.rmtree(duck_out, ignore_errors=True)

    # 3. the PCA step: bench_pca as its owner wrote it
    if not opts.skip_pca:
        report["pca_step"] = pca_step(opts, full, reference)
        load.append(("after pca", os.getloadavg()))
        save(report, opts, load, t_bench)

    # 4. scaling
    if not opts.skip_scaling:
        report["scaling"] = scaling(opts, full, reference)
        load.append(("after scaling", os.getloadavg()))

    if not opts.keep:
        drop_schema(opts.schema)
    report["complete"] = True
    save(report, opts, load, t_bench)
    return report


def save(report: dict, opts: Options, load: list, t_bench: float) -> None:
    """Write what is measured so far (a long run killed half-way still leaves its figures)."""
    report["loadavg"] = [{"when": w, "1m": round(a[0], 2), "5m": round(a[1], 2), "15m": round(a[2], 2)}
                         for w, a in load]
    report["bench_wall_s"] = round(time.perf_counter() - t_bench, 1)
    report.setdefault("complete", False)
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    opts.out.with_suffix(".md").write_text(markdown(report))


def pca_step(opts: Options, full: dict, reference: dict) -> dict:
    from traffic_anomalies_dev import bench_pca

    users = opts.pca_users
    kwargs = {"out_path": opts.out.parent / "nightly_pca.json", "days": opts.pca_days, "users": users}
    accepted = inspect.signature(bench_pca.run).parameters
    kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    started = time.perf_counter()
    try:
        result = bench_pca.run(**kwargs)
    except Exception as exc:  # another engineer's module, being optimised: report, do not fail
        return {"error": f"{type(exc).__name__}: {exc}"}
    elapsed = time.perf_counter() - started
    pca_nodes = sum(n["time_s"] for s in full["steps"] if s["family"] == "PcaHours" for n in s.get("nodes", [])
                    if n["id"].startswith("model."))
    pca_tests = sum(n["time_s"] for s in full["steps"] if s["family"] == "PcaHours" for n in s.get("nodes", [])
                    if n["id"].startswith("test."))
    return {
        "bench_pca": {"params": kwargs | {"out_path": str(kwargs.get("out_path"))}, "wall_s": round(elapsed, 2),
                      "timings_s": result.get("timings_s"), "ratios_vs_numpy": result.get("ratios_vs_numpy"),
                      "agrees_with_numpy": result.get("agrees_with_numpy")},
        "in_nightly": {
            "pca_models_time_s": round(pca_nodes, 2),
            "pca_tests_time_s": round(pca_tests, 2),
            "pca_hours_span_s": full["profile"]["pca_hours_span_s"],
            "pandas_pca_s": round(reference["stages_s"]["pca_s"], 2),
            "ratio_models_over_pandas": round(pca_nodes / reference["stages_s"]["pca_s"], 1)
            if reference["stages_s"]["pca_s"] else None,
        },
    }


def scaling(opts: Options, full: dict, reference: dict) -> list[dict]:
    points = []
    for factor in opts.scales:
        users = opts.scale_base * factor
        if users == opts.users:
            db, pdr, lines = full, reference, None
            point = {"factor": factor, "users": users, "reused_full_run": True}
        else:
            lake, _ = ensure_lake(opts.lake_dir, users, opts.days)
            schema = f"{opts.schema}_x{factor}"
            reset_schema(schema)
            run_date = START + dt.timedelta(days=opts.days - 1)
            try:
                db = run_nightly(schema, run_date, lake, opts.workers)
                db["profile"] = summarise_steps(db["steps"], db["wall_s"])
                pdr = run_reference(lake, run_date, run_root(schema) / "reference")
            finally:
                if not opts.keep:
                    drop_schema(schema)
            point = {"factor": factor, "users": users, "reused_full_run": False}
        fam = db["profile"]["by_family"]
        point.update({
            "database_wall_s": round(db["wall_s"], 1),
            "staging_step_s": fam.get("BuildStaging", {}).get("wall_s"),
            "pca_hours_span_s": db["profile"]["pca_hours_span_s"],
            "marts_step_s": fam.get("BuildMarts", {}).get("wall_s"),
            "pandas_wall_s": round(pdr["wall_s"], 1),
            "ratio": round(db["wall_s"] / pdr["wall_s"], 2),
            "backends_peak_private_mb": db["memory"]["backends_peak_private_mb"],
            "pandas_peak_rss_mb": pdr["peak_rss_mb"],
        })
        points.append(point)
    return points


# --- markdown ----------------------------------------------------------------------------------


def _f(x: Any, fmt: str = ".1f") -> str:
    return "–" if x is None else format(x, fmt)


def markdown(r: dict) -> str:
    p, m = r["params"], r["machine"]
    full, ref = r["full_run"]["database"], r["full_run"]["pandas"]
    prof = full["profile"]
    ag = r["agreement"]
    lines = [
        "# Nightly benchmark: the database pipeline vs pandas in memory",
        "",
        f"Lake: {p['users']:,} users x {p['days']} days (+1 for the incremental night), "
        f"{r['lake']['lines']:,} lines, seed {p['seed']}; {p['workers']} Luigi workers.",
        f"Machine: {m['cpu_count']} CPUs, {m['mem_total_gb']} GB RAM, PostgreSQL {m['postgres'].get('server_version')} "
        f"(shared_buffers {m['postgres'].get('shared_buffers')}, work_mem {m['postgres'].get('work_mem')}), "
        f"pandas {m['pandas']}, numpy {m['numpy']}.",
        "Load average (1 min) during the run: " + ", ".join(f"{x['when']} {x['1m']}" for x in r["loadavg"])
        + " (the machine was shared).",
        "",
        "## Full run",
        "",
        "| | wall | peak memory |",
        "| --- | ---: | --- |",
        f"| nightly (Luigi + dbt + PostgreSQL) | {full['wall_s']:.1f} s | client processes {full['memory']['client_tree_peak_rss_mb']:.0f} MB RSS; "
        f"backends {full['memory']['backends_peak_private_mb']:.0f} MB private ({full['memory']['backends_peak_rss_mb']:.0f} MB RSS incl. shared buffers) |",
        f"| pandas reference | {ref['wall_s']:.1f} s | {ref['peak_rss_mb']:.0f} MB (ru_maxrss) |",
    ]
    duck = r["full_run"].get("duckdb")
    if duck:
        lines.append(f"| DuckDB reference | {duck['wall_s']:.1f} s | {duck['peak_rss_mb']:.0f} MB (ru_maxrss) |")
    lines += [
        "",
        f"Time ratio database / pandas: **{r['full_run']['time_ratio_db_over_pandas']}x**. "
        f"pandas stages: read + parse + count {ref['stages_s']['read_parse_count_s']:.1f} s, "
        f"24 PCAs {ref['stages_s']['pca_s']:.1f} s, outliers {ref['stages_s']['outliers_s']:.2f} s.",
        "",
        "Agreement: " + ("**yes**" if ag["agree"] else "**no**")
        + f" — hourly counts {ag['hourly_counts_totals']['database']['rows']:,} rows / "
        f"{ag['hourly_counts_totals']['database']['flows']:,} flows in the database, "
        f"{ag['hourly_counts_totals']['pandas']['rows']:,} / {ag['hourly_counts_totals']['pandas']['flows']:,} in pandas; "
        f"(day, hour) cells differing: {ag['hourly_counts_by_day_hour']['differing_cells']}; "
        f"components per hour equal: {ag['components_per_hour']['equal']}; "
        f"max component difference (up to sign) {ag['component_max_abs_diff_up_to_sign']:.1e}.",
        "",
        "| outliers | database | pandas | both |",
        "| --- | ---: | ---: | ---: |",
    ]
    for method, o in ag["outliers"].items():
        lines.append(f"| {method} | {o['database']} | {o['pandas']} | {o['both']} |")
    agd = r.get("agreement_duckdb")
    if duck and agd:
        lines += [
            "",
            f"DuckDB reference (the lake read with DuckDB's CSV reader, the same line rules and hourly counts, "
            f"the same PCA window and numpy PCA): {duck['wall_s']:.1f} s, time ratio database / DuckDB "
            f"**{r['full_run']['time_ratio_db_over_duckdb']}x** (the 2x target is against pandas). "
            f"DuckDB stages: read + parse + count {duck['stages_s']['read_parse_count_s']:.1f} s, "
            f"24 PCAs {duck['stages_s']['pca_s']:.1f} s. Agreement with the database: "
            + ("**yes**" if agd["agree"] else "**no**")
            + f" (hourly counts {agd['hourly_counts_totals']['duckdb']['rows']:,} rows / "
            f"{agd['hourly_counts_totals']['duckdb']['flows']:,} flows; (day, hour) cells differing: "
            f"{agd['hourly_counts_by_day_hour']['differing_cells']}; outliers equal: "
            f"{all(o['equal'] for o in agd['outliers'].values())}).",
        ]
    lines += [
        "",
        "### Where the time goes (full run)",
        "",
        "| step | processes | wall (sum) | dbt start-up + parse | node time |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for fam, s in prof["by_family"].items():
        lines.append(f"| {fam} | {s['count']} | {s['wall_s']:.1f} s | {s['startup_s']:.1f} s | {s['node_time_s']:.1f} s |")
    lines += [
        "",
        f"The 24 PCA hours ran from first start to last finish in {_f(prof['pca_hours_span_s'])} s. "
        f"dbt start-up (interpreter, imports, parse, connection, relation cache) is "
        f"{prof['dbt_startup_sum_s']:.1f} s of {prof['dbt_process_wall_sum_s']:.1f} s of dbt process time "
        f"({100 * (prof['dbt_startup_share_of_process_time'] or 0):.0f} %).",
        "",
        "Slowest nodes:",
        "",
        "| node | step | time |",
        "| --- | --- | ---: |",
    ]
    for n in prof["slowest_nodes"][:10]:
        lines.append(f"| {n['id']} | {n['step']} | {n['time_s']:.1f} s |")
    ex = r.get("staging_explain", {})
    if "plan" in ex:
        lines += ["", f"Staging parse, one day ({ex['lines']:,} lines): EXPLAIN ANALYZE {ex['explain_analyze_s']:.1f} s, "
                  f"of which reading the lake alone (count(*) of the foreign partition) {ex['read_only_s']:.1f} s."]
    inc = r.get("incremental")
    if inc:
        iprof = inc["run"]["profile"]["by_family"]
        lines += [
            "",
            "## Incremental night",
            "",
            f"One more day: {inc['run']['wall_s']:.1f} s, **{100 * inc['share_of_full_run']:.0f} %** of the full run "
            f"(staging step {_f(iprof.get('BuildStaging', {}).get('wall_s'))} s, PCA hours "
            f"{_f(inc['run']['profile']['pca_hours_span_s'])} s, marts {_f(iprof.get('BuildMarts', {}).get('wall_s'))} s). "
            f"Rows written: " + ", ".join(f"{k} {v if v is not None else '–'}" for k, v in inc["rows_written"].items()) + ".",
            "",
        ]
        for k, v in inc["recomputed"].items():
            lines.append(f"- {k}: {v}")
    if "pca_step" in r:
        ps = r["pca_step"]
        lines += ["", "## PCA step", ""]
        if "error" in ps:
            lines.append(f"bench_pca failed: {ps['error']}")
        else:
            b, n = ps["bench_pca"], ps["in_nightly"]
            lines.append(f"bench_pca ({b['params'].get('days')} days x {b['params'].get('users')} users, 24 hours): "
                         f"ratios vs numpy {json.dumps(b['ratios_vs_numpy'])}; agrees with numpy: {b['agrees_with_numpy']}.")
            lines.append(f"In the nightly: the 24 PCA models took {n['pca_models_time_s']:.1f} s of node time "
                         f"(+ {n['pca_tests_time_s']:.1f} s of their tests), {_f(n['pca_hours_span_s'])} s wall; pandas "
                         f"{n['pandas_pca_s']:.1f} s (ratio {n['ratio_models_over_pandas']}).")
    if "scaling" in r:
        lines += ["", "## Scaling", "", "| users | database | staging | PCA hours | marts | pandas | ratio | backends private | pandas RSS |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for s in r["scaling"]:
            lines.append(f"| {s['users']:,} | {s['database_wall_s']:.1f} s | {_f(s['staging_step_s'])} s | "
                         f"{_f(s['pca_hours_span_s'])} s | {_f(s['marts_step_s'])} s | {s['pandas_wall_s']:.1f} s | "
                         f"{s['ratio']}x | {s['backends_peak_private_mb']:.0f} MB | {s['pandas_peak_rss_mb']:.0f} MB |")
    lines += ["", f"Benchmark wall time: {r['bench_wall_s']:.0f} s.", ""]
    return "\n".join(lines)


# --- command line ------------------------------------------------------------------------------


def _options(args: argparse.Namespace) -> Options:
    opts = Options()
    if args.quick:
        opts.users, opts.days, opts.scale_base = QUICK["users"], QUICK["days"], QUICK["scale_base"]
        opts.pca_users, opts.pca_days, opts.quick = QUICK["pca_users"], QUICK["pca_days"], True
        opts.out = opts.out.with_name("nightly-quick.json")
    for name in ("users", "days", "scale_base", "workers", "schema", "pca_users", "keep"):
        value = getattr(args, name)
        if value is not None and value is not False:
            setattr(opts, name, value)
    if args.scales:
        opts.scales = tuple(int(x) for x in args.scales.split(","))
    if args.lake_dir:
        opts.lake_dir = Path(args.lake_dir).resolve()
    if args.out:
        opts.out = Path(args.out).resolve()
    opts.skip_pca, opts.skip_scaling = args.skip_pca, args.skip_scaling
    return opts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, help="users of the full run (default 10000)")
    parser.add_argument("--days", type=int, help="days of the full run (default 60; the lake has one more)")
    parser.add_argument("--quick", action="store_true", help=f"smoke size: {QUICK}")
    parser.add_argument("--scale-base", type=int, help="users at 1x for the scaling runs (default 2500)")
    parser.add_argument("--scales", help="comma-separated multipliers (default 1,2,4)")
    parser.add_argument("--workers", type=int, help="Luigi workers (default 2)")
    parser.add_argument("--schema", help="target schema (default bench_nightly)")
    parser.add_argument("--lake-dir", help=f"where lakes are generated/reused (default {DEFAULT_LAKE_DIR}); "
                        "the database server must be able to read it")
    parser.add_argument("--pca-users", type=int, help="users of the bench_pca matrices (default 2500)")
    parser.add_argument("--out", help=f"JSON report (default {DEFAULT_OUT}; a .md is written next to it)")
    parser.add_argument("--skip-pca", action="store_true", help="do not run bench_pca")
    parser.add_argument("--skip-scaling", action="store_true", help="do not run the scaling runs")
    parser.add_argument("--keep", action="store_true", help="keep the schema and reference outputs")


def command(args: argparse.Namespace) -> int:
    report = run(_options(args))
    sys.stdout.write(markdown(report))
    return 0 if report["agreement"]["agree"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="traffic-anomalies bench nightly", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

