"""`traffic-anomalies bench nightly`: the whole nightly run against an in-memory pandas pipeline.

One run writes bench/results/nightly.json and nightly.md:

1. full run   the nightly (Luigi + dbt, `traffic-anomalies nightly`) on a generated lake of
              --users x --days (default 10,000 x 60, ~20 M lines), timed, with the peak memory of
              its Python processes and of the database backends serving it; and
              bench/reference_pandas.py on the same files; their hourly counts and outliers
              are compared.
2. incremental  one more lake day (the lake is generated with days + 1; the full run stops at
              day `days`) and the nightly for it, as a share of the full run.
3. PCA step   traffic_anomalies.bench_pca (madlib_compat vs numpy), called as it is.
4. scaling    the full run at 1x, 2x, 4x of --scale-base users (the largest reuses step 1 when
              it is the same size).
5. profile    per step: process wall time vs the time dbt spent running nodes (the rest is
              interpreter start-up, project parse, connection and cache set-up); the slowest
              nodes from the run_results.json of every step; EXPLAIN ANALYZE of the staging
              parse on one day.

The database is the one the PG* variables name (else the project's own cluster), in schemas
of the benchmark's own (--schema, default bench_nightly; the scaling runs use <schema>_x<N>).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib.util
import inspect
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg2

from traffic_anomalies import PROJECT_DIR, localdb
from traffic_anomalies.bench_pca import git_state

DEFAULT_OUT = PROJECT_DIR / "bench" / "results" / "nightly.json"
DEFAULT_LAKE_DIR = PROJECT_DIR / "target" / "bench-lake"
REFERENCE = PROJECT_DIR / "bench" / "reference_pandas.py"
START = dt.date(2017, 1, 1)
SEED = 42
QUICK = {"users": 300, "days": 30, "scale_base": 100, "pca_users": 300, "pca_days": 28}


# --- memory sampling ---------------------------------------------------------------------------


def _status(pid: int) -> dict[str, int]:
    """VmRSS / RssAnon of a process in kB (0 when it is gone or unreadable)."""
    out = {"VmRSS": 0, "RssAnon": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in out:
                out[key] = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return out


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _tree(roots: list[int], children: dict[int, list[int]]) -> set[int]:
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, ()))
    return seen


class MemorySampler:
    """Samples, every `interval` s, the RSS of a client process tree (Python, Luigi workers, dbt)
    and of the database backends connected to our database (with their parallel workers and the
    lake reader programs they run). Backend figures are private memory (RssAnon): their RSS also
    counts the shared buffers each one touched, which would be counted once per backend."""

    def __init__(self, root_pid: int, interval: float = 0.25):
        self.root_pid = root_pid
        self.interval = interval
        self.peak_client_kb = 0
        self.peak_backends_anon_kb = 0
        self.peak_backends_rss_kb = 0
        self.peak_backends = 0
        self.samples = 0
        self._stop = threading.Event()
        self._conn = psycopg2.connect("", application_name="bench-nightly memory sampler")
        self._conn.autocommit = True
        with self._conn.cursor() as cur:
            cur.execute("select pg_backend_pid()")
            self._own = cur.fetchone()[0]
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _backend_pids(self) -> list[int]:
        with self._conn.cursor() as cur:
            cur.execute(
                "select pid from pg_stat_activity where datname = current_database() and pid <> %s",
                (self._own,))
            return [r[0] for r in cur.fetchall()]

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                children = _children_map()
                client = _tree([self.root_pid], children)
                backends = _tree(self._backend_pids(), children) - client
                client_kb = sum(_status(p)["VmRSS"] for p in client)
                stats = [_status(p) for p in backends]
                self.peak_client_kb = max(self.peak_client_kb, client_kb)
                self.peak_backends_anon_kb = max(self.peak_backends_anon_kb, sum(s["RssAnon"] for s in stats))
                self.peak_backends_rss_kb = max(self.peak_backends_rss_kb, sum(s["VmRSS"] for s in stats))
                self.peak_backends = max(self.peak_backends, len(stats))
                self.samples += 1
            except (psycopg2.Error, OSError):
                pass
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._conn.close()

    def result(self) -> dict[str, Any]:
        return {
            "client_tree_peak_rss_mb": round(self.peak_client_kb / 1024, 1),
            "backends_peak_private_mb": round(self.peak_backends_anon_kb / 1024, 1),
            "backends_peak_rss_mb": round(self.peak_backends_rss_kb / 1024, 1),
            "backends_peak_count": self.peak_backends,
            "samples": self.samples,
        }


# --- database helpers --------------------------------------------------------------------------


def _connect() -> psycopg2.extensions.connection:
    conn = psycopg2.connect("", application_name="bench-nightly")
    conn.autocommit = True
    return conn


def _query(sql: str, params: tuple = ()) -> list[tuple]:
    with _connect() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


def _reset_schema(schema: str) -> None:
    """A fresh pipeline: no tables, no completion markers, no artifacts of an earlier bench."""
    with _connect() as conn, conn.cursor() as cur:
        for name in (schema, f"{schema}_lake"):
            cur.execute(f'drop schema if exists "{name}" cascade')
        cur.execute("select to_regclass('ta_meta.step_state')")
        if cur.fetchone()[0] is not None:
            cur.execute("delete from ta_meta.step_state where target_schema = %s", (schema,))
    shutil.rmtree(_run_root(schema), ignore_errors=True)


def _drop_schema(schema: str) -> None:
    _reset_schema(schema)


def _run_root(schema: str) -> Path:
    root = os.environ.get("TA_DBT_TARGET_ROOT") or PROJECT_DIR / "target"
    return Path(root).resolve() / "nightly" / schema


def _server_info() -> dict[str, Any]:
    rows = dict(_query("select name, setting || coalesce(unit, '') from pg_settings where name in "
                       "('server_version', 'shared_buffers', 'work_mem', 'max_parallel_workers_per_gather', "
                       "'jit', 'max_worker_processes')"))
    return rows


# --- lakes -------------------------------------------------------------------------------------


def _readable_by_others(path: Path) -> None:
    """The database server (another OS user) reads the lake: open every directory on the way."""
    for parent in [path, *path.parents]:
        try:
            mode = parent.stat().st_mode
        except OSError:
            continue
        if not mode & 0o001 and parent.owner() == os.environ.get("USER", parent.owner()):
            try:
                parent.chmod(mode | 0o055)
            except OSError:
                pass


def ensure_lake(lake_dir: Path, users: int, days: int) -> tuple[Path, float | None]:
    """A lake of `users` x `days` from START with SEED; reused when one is already there."""
    from traffic_anomalies.lake import generate_lake

    path = lake_dir / f"u{users}_d{days}_s{SEED}"
    manifest = path / "manifest.json"
    if manifest.exists():
        params = json.loads(manifest.read_text()).get("parameters", {})
        if params.get("users") == users and params.get("days") == days and params.get("seed") == SEED:
            return path, None
    path.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    generate_lake(path, users=users, days=days, start=START, seed=SEED)
    elapsed = time.perf_counter() - started
    for root, dirs, files in os.walk(path):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    _readable_by_others(path)
    return path, elapsed


# --- one nightly run ---------------------------------------------------------------------------


def run_nightly(schema: str, run_date: dt.date, lake: Path, workers: int, extra_env: dict | None = None) -> dict:
    """`traffic-anomalies nightly` in a subprocess (fresh interpreter, like cron), with memory."""
    env = {**os.environ, "TA_SCHEMA": schema, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **(extra_env or {})}
    log = _run_root(schema) / f"bench-{run_date}.log"
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
    rows = _query(
        "select step, task_family, elapsed_s, finished_at, details from ta_meta.step_state "
        "where target_schema = %s and run_date = %s order by finished_at", (schema, run_date))
    steps = []
    for task_id, family, elapsed, finished, details in rows:
        step = {"task": task_id, "family": family,  # the step: BuildMarts, PcaHour_07…
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
    # span of the PCA hours (they run in parallel): first start to last finish
    pca = [s for s in steps if s["family"] == "PcaHour"]
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


# --- the pandas reference ----------------------------------------------------------------------


def _reference_module():
    spec = importlib.util.spec_from_file_location("reference_pandas", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("reference_pandas", module)
    spec.loader.exec_module(module)
    return module


def run_reference(lake: Path, run_date: dt.date, out_dir: Path, write_counts: bool = False) -> dict:
    """bench/reference_pandas.py in a subprocess; its peak RSS is that child's ru_maxrss, read by an
    intermediate interpreter that has no other child (so no other process's peak leaks in)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ref_cmd = [sys.executable, str(REFERENCE), "--lake", str(lake), "--run-date", run_date.isoformat(),
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
        raise RuntimeError(f"reference_pandas failed:\n{done.stderr[-3000:]}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    if info["code"] != 0:
        raise RuntimeError(f"reference_pandas exited {info['code']}:\n{done.stderr[-3000:]}")
    summary = json.loads((out_dir / "summary.json").read_text())
    return {"wall_s": info["wall_s"], "peak_rss_mb": round(info["maxrss_kb"] / 1024, 1),
            "stages_s": summary["timings_s"], "summary": summary, "out_dir": str(out_dir)}


# --- agreement ---------------------------------------------------------------------------------


def compare(schema: str, reference_out: Path, full_counts: bool = False) -> dict:
    """Hourly counts and outliers of the database run vs the pandas run."""
    ref = _reference_module()
    summary = json.loads((reference_out / "summary.json").read_text())
    report: dict[str, Any] = {}

    # hourly counts: totals, per (day, hour), and (quick sizes) every row
    db_rows, db_flows, db_days, db_users = _query(
        f'select count(*), sum(flow_count), count(distinct activity_date), count(distinct user_name) '
        f'from "{schema}".int_hourly_counts')[0]
    rc = summary["counts"]
    report["hourly_counts_totals"] = {
        "database": {"rows": db_rows, "flows": int(db_flows or 0), "days": db_days, "users": db_users},
        "pandas": rc,
        "equal": (db_rows, int(db_flows or 0), db_days, db_users) == (rc["rows"], rc["flows"], rc["days"], rc["users"]),
    }
    by_dh = pd.read_csv(reference_out / "counts_by_day_hour.csv")
    db_dh = pd.DataFrame(_query(
        f'select activity_date::text, hour_of_day, count(*), sum(flow_count)::bigint '
        f'from "{schema}".int_hourly_counts group by 1, 2'),
        columns=["activity_date", "hour_of_day", "rows", "flows"])
    merged = by_dh.merge(db_dh, on=["activity_date", "hour_of_day"], how="outer", suffixes=("_pd", "_db"))
    diff = merged[(merged["rows_pd"] != merged["rows_db"]) | (merged["flows_pd"] != merged["flows_db"])]
    report["hourly_counts_by_day_hour"] = {"cells": len(merged), "differing_cells": len(diff),
                                           "examples": diff.head(5).astype(str).to_dict("records")}
    if full_counts and (reference_out / "hourly_counts.csv").exists():
        pc = pd.read_csv(reference_out / "hourly_counts.csv", keep_default_na=False)
        dc = pd.DataFrame(_query(
            f'select activity_date::text, hour_of_day, user_name, flow_count from "{schema}".int_hourly_counts'),
            columns=["activity_date", "hour_of_day", "user_name", "flow_count"])
        m = pc.merge(dc, on=["activity_date", "hour_of_day", "user_name"], how="outer", suffixes=("_pd", "_db"))
        bad = m[m["flow_count_pd"] != m["flow_count_db"]]
        report["hourly_counts_rows"] = {"rows": len(m), "differing_rows": len(bad),
                                        "examples": bad.head(5).astype(str).to_dict("records")}

    # components kept per hour
    db_k = dict(_query(f'select hour_of_day, components_kept from "{schema}".fct_pca_summary'))
    report["components_per_hour"] = {
        "database": [int(db_k.get(h, 0)) for h in range(24)], "pandas": summary["k_per_hour"],
        "equal": [int(db_k.get(h, 0)) for h in range(24)] == summary["k_per_hour"]}

    # outliers
    db_out = pd.DataFrame(_query(
        f'select method, hour_of_day, user_name, component_rank, loading from "{schema}".fct_user_outliers'),
        columns=["method", "hour_of_day", "user_name", "component_rank", "loading"])
    pd_out = pd.read_csv(reference_out / "outliers.csv", keep_default_na=False)
    comps = np.load(reference_out / "components.npz")
    users = [str(u) for u in comps["users"]]
    pcas = [{"components": comps[f"h{h:02d}"], "proportion": None, "cumulative_proportion": None}
            for h in range(24)]
    # the database's components, columns put in the reference's user order, to align signs
    db_users = dict(_query(f'select user_name, user_index from "{schema}".dim_users'))
    order = np.array([db_users.get(u, 0) - 1 for u in users])
    db_components: dict[int, np.ndarray] = {}
    for hour, rank, vec in _query(f'select hour_of_day, component_rank, principal_components '
                                  f'from "{schema}".fct_pca_components order by 1, 2'):
        db_components.setdefault(hour, []).append(np.asarray(vec, dtype=float)[order])
    db_components = {h: np.vstack(v) for h, v in db_components.items()}
    published = ref.published_outliers(pcas, users, db_components)
    pd_sets = {
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
            "database": len(a), "pandas": len(b), "both": len(a & b),
            "only_database": sorted(a - b)[:5], "only_pandas": sorted(b - a)[:5],
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
    compiled = next(_run_root(schema).glob(
        "*/BuildStaging/compiled/traffic_anomalies/models/staging/base_lake__flow_lines_shard_0.sql"), None)
    if compiled is None:
        return {"error": "compiled base_lake__flow_lines_shard_0.sql not found"}
    sql = compiled.read_text()
    sql = re.sub(r"where dt in \([^)]*\)|where false", f"where dt = '{day.isoformat()}'::date", sql, count=1)
    # The planner settings the model's pre_hook makes (without them the plan is another one,
    # quadratic in the size of the day).
    model = (PROJECT_DIR / "macros" / "staging" / "flow_lines_shard_model.sql").read_text()
    settings = re.findall(r"set local (\w+) = (\w+)", model)
    with _connect() as conn, conn.cursor() as cur:
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
    server = _server_info()
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
    _reset_schema(opts.schema)
    full = run_nightly(opts.schema, run_date, lake, opts.workers)
    load.append(("after full run", os.getloadavg()))
    full["profile"] = summarise_steps(full["steps"], full["wall_s"])
    ref_out = _run_root(opts.schema) / "reference"
    reference = run_reference(lake, run_date, ref_out, write_counts=opts.quick)
    load.append(("after pandas", os.getloadavg()))
    report["full_run"] = {"database": full, "pandas": reference,
                          "time_ratio_db_over_pandas": round(full["wall_s"] / reference["wall_s"], 2)}
    report["agreement"] = compare(opts.schema, ref_out, full_counts=opts.quick)
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
        _drop_schema(opts.schema)
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
    from traffic_anomalies import bench_pca

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
    pca_nodes = sum(n["time_s"] for s in full["steps"] if s["family"] == "PcaHour" for n in s.get("nodes", [])
                    if n["id"].startswith("model."))
    pca_tests = sum(n["time_s"] for s in full["steps"] if s["family"] == "PcaHour" for n in s.get("nodes", [])
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
            _reset_schema(schema)
            run_date = START + dt.timedelta(days=opts.days - 1)
            try:
                db = run_nightly(schema, run_date, lake, opts.workers)
                db["profile"] = summarise_steps(db["steps"], db["wall_s"])
                pdr = run_reference(lake, run_date, _run_root(schema) / "reference")
            finally:
                if not opts.keep:
                    _drop_schema(schema)
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
