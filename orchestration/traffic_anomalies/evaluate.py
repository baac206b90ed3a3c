"""`traffic-anomalies evaluate`: how well the marts find injected anomalies.

For every scenario (one anomaly kind at one strength) and seed, a lake is generated with the
lake generator's public API (`generate_lake`, `AnomalySpec`), staged and built with dbt into a
schema of its own, and the detections of each method are compared with the lake's
`ground_truth.csv`, as (user, hour of day) pairs:

* ``published``         fct_user_outliers, method published (positive loadings > 0.1 on any
                        kept component, as first published);
* ``absolute_loading``  fct_user_outliers, method absolute_loading (ours);
* ``spe_top_user``      fct_day_anomalies: the top contributor of every anomalous day.
* ``zscore_gt_5``, ``zscore_gt_10``  a reference, not PCA: the (user, hour) pairs whose count on
                        some day of the window is more than 5 (10) of the user's own standard
                        deviations (over the other days, floored at 1 flow) above the mean of
                        the other days. It shows how often normal traffic alone already holds
                        such deviations, i.e. the precision any per-cell detector can reach.

Precision = detected pairs that are injected / detected pairs; recall = injected pairs
detected / injected pairs; both summed over seeds. ``rank1`` is the share of injected pairs
whose user is ranked first in that hour by the method (fct_user_outliers.rank_in_hour = 1, or
the anomalous day with the largest spe_ratio of the hour names the user). A scenario without
anomalies ("none") measures the false detections on normal traffic alone.

The generator is used as it is: nothing here shapes its traffic to suit the detector.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from traffic_anomalies import PROJECT_DIR

METHODS: tuple[str, ...] = ("published", "absolute_loading", "spe_top_user", "zscore_gt_5", "zscore_gt_10")

# (kind, magnitude, incidents per lake): single-hour spikes of 3, 5 and 10 sigma, a port scan,
# off-hours bursts, a dormant user waking up, and a lake with no anomaly at all.
DEFAULT_SCENARIOS: tuple[tuple[str, float, int], ...] = (
    ("spike", 3, 5),
    ("spike", 5, 5),
    ("spike", 10, 5),
    ("port_scan", 10, 3),
    ("off_hours", 10, 3),
    ("dormant_wakeup", 10, 1),
    ("none", 0, 0),
)


@dataclass
class Counts:
    detected: int = 0
    true_positive: int = 0
    injected: int = 0
    found: int = 0
    ranked_first: int = 0

    def add(self, other: "Counts") -> None:
        for name in ("detected", "true_positive", "injected", "found", "ranked_first"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def figures(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "precision": round(self.true_positive / self.detected, 4) if self.detected else None,
            "recall": round(self.found / self.injected, 4) if self.injected else None,
            "rank1": round(self.ranked_first / self.injected, 4) if self.injected else None,
        }


@dataclass
class Scenario:
    kind: str
    magnitude: float
    count: int

    @property
    def name(self) -> str:
        return "none" if self.kind == "none" else f"{self.kind}:{self.magnitude:g}"

    def specs(self) -> list:
        from traffic_anomalies.lake import AnomalySpec

        return [] if self.kind == "none" else [AnomalySpec(self.kind, float(self.magnitude), self.count)]


@dataclass
class RunResult:
    scenario: str
    seed: int
    seconds: float
    injected_pairs: int
    methods: dict[str, Counts] = field(default_factory=dict)


def _connect():
    import psycopg2

    conn = psycopg2.connect("")  # libpq reads the PG* variables
    conn.autocommit = True
    return conn


def _rows(sql: str) -> list[tuple]:
    with _connect() as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def _drop_schema(schema: str) -> None:
    conn = _connect()
    try:
        with conn.cursor() as cur:
            for name in (schema, f"{schema}_lake"):
                cur.execute(f'drop schema if exists "{name}" cascade')
    finally:
        conn.close()


def _run_dbt(args: Sequence[str], *, schema: str, lake_root: Path, target_path: Path) -> None:
    """Through traffic_anomalies.dbt when present (its errors name the failed nodes)."""
    dbt_vars = {"lake_root": str(lake_root)}
    env = {"TA_SCHEMA": schema, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    try:
        from traffic_anomalies import dbt as dbt_runner
    except ImportError:  # pragma: no cover - the runner is part of the project
        dbt_runner = None
    if dbt_runner is not None:
        dbt_runner.run_dbt(list(args), target_path=target_path, dbt_vars=dbt_vars, env=env)
        return
    import subprocess

    command = [
        str(Path(sys.executable).parent / "dbt"), *args,
        "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
        "--target-path", str(target_path), "--vars", json.dumps(dbt_vars),
    ]
    subprocess.run(command, check=True, env={**os.environ, **env}, cwd=PROJECT_DIR)


def ground_truth_pairs(lake_dir: Path) -> set[tuple[str, int]]:
    with open(lake_dir / "ground_truth.csv", newline="") as handle:
        return {(row["user_name"], int(row["hour"])) for row in csv.DictReader(handle)}


def detections(schema: str) -> tuple[dict[str, set[tuple[str, int]]], dict[str, set[tuple[str, int]]]]:
    """Per method: the detected (user, hour) pairs, and the pairs ranked first in their hour."""
    detected: dict[str, set[tuple[str, int]]] = {m: set() for m in METHODS}
    first: dict[str, set[tuple[str, int]]] = {m: set() for m in METHODS}
    for method, user, hour, rank in _rows(
        f'select method, user_name, hour_of_day, rank_in_hour from "{schema}".fct_user_outliers'
    ):
        detected[method].add((user, hour))
        if rank == 1:
            first[method].add((user, hour))
    for user, hour, rank in _rows(
        f"""
        select top_user_name, hour_of_day,
               row_number() over (partition by hour_of_day order by spe_ratio desc, day_index)
        from "{schema}".fct_day_anomalies
        where is_anomalous
        """
    ):
        detected["spe_top_user"].add((user, hour))
        if rank == 1:
            first["spe_top_user"].add((user, hour))
    for user, hour, z, rank in _rows(
        f"""
        with dense as (
            select hours.hour_of_day, days.day_index, users.user_index, coalesce(cells.value, 0) as x
            from generate_series(0, 23) as hours (hour_of_day)
            cross join "{schema}".dim_days as days
            cross join "{schema}".dim_users as users
            left join "{schema}".int_pca_input as cells
                on cells.hour_of_day = hours.hour_of_day and cells.row_id = days.day_index
                and cells.col_id = users.user_index
        ),
        sums as (
            select hour_of_day, user_index, sum(x) as s1, sum(x * x) as s2, count(*) as n
            from dense group by hour_of_day, user_index
        ),
        deviations as (
            select dense.hour_of_day, dense.user_index,
                (dense.x - (sums.s1 - dense.x) / (sums.n - 1)) / greatest(sqrt(greatest(
                    (sums.s2 - dense.x * dense.x) / (sums.n - 1) - power((sums.s1 - dense.x) / (sums.n - 1), 2),
                    0)), 1) as z
            from dense inner join sums using (hour_of_day, user_index)
        ),
        per_pair as (
            select users.user_name, deviations.hour_of_day, max(deviations.z) as z
            from deviations inner join "{schema}".dim_users as users using (user_index)
            group by users.user_name, deviations.hour_of_day
        )
        select user_name, hour_of_day, z, row_number() over (partition by hour_of_day order by z desc, user_name)
        from per_pair where z > 5
        """
    ):
        for method, limit in (("zscore_gt_5", 5), ("zscore_gt_10", 10)):
            if z > limit:
                detected[method].add((user, hour))
                if rank == 1:
                    first[method].add((user, hour))
    return detected, first


def score(detected: set, first: set, truth: set) -> Counts:
    return Counts(
        detected=len(detected),
        true_positive=len(detected & truth),
        injected=len(truth),
        found=len(truth & detected),
        ranked_first=len(truth & first),
    )


def run_one(scenario: Scenario, seed: int, *, users: int, days: int, work_dir: Path, keep: bool) -> RunResult:
    from traffic_anomalies.lake import generate_lake

    started = time.monotonic()
    lake_dir = Path(tempfile.mkdtemp(prefix=f"lake-{scenario.kind}-", dir=work_dir))
    lake_dir.chmod(0o755)  # the database server reads it as another OS user
    schema = f"eval_{uuid.uuid4().hex[:10]}"
    target_path = work_dir / f"dbt-{schema}"
    try:
        summary = generate_lake(lake_dir, users=users, days=days, seed=seed, clean=True, anomalies=scenario.specs())
        for path in [lake_dir, *lake_dir.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        _run_dbt(["run-operation", "stage_external_sources"], schema=schema, lake_root=lake_dir, target_path=target_path)
        _run_dbt(
            ["build", "--select", "+fct_user_outliers", "+fct_day_anomalies", "--exclude", "test_type:data"],
            schema=schema, lake_root=lake_dir, target_path=target_path,
        )
        truth = ground_truth_pairs(Path(summary.out_dir))
        detected, first = detections(schema)
        methods = {m: score(detected[m], first[m], truth) for m in METHODS}
        return RunResult(scenario.name, seed, round(time.monotonic() - started, 1), len(truth), methods)
    finally:
        if not keep:
            _drop_schema(schema)
            shutil.rmtree(lake_dir, ignore_errors=True)
            shutil.rmtree(target_path, ignore_errors=True)


def summarise(results: Iterable[RunResult]) -> dict[str, dict[str, dict[str, Any]]]:
    totals: dict[str, dict[str, Counts]] = {}
    for result in results:
        per_method = totals.setdefault(result.scenario, {m: Counts() for m in METHODS})
        for method, counts in result.methods.items():
            per_method[method].add(counts)
    return {s: {m: c.figures() for m, c in per.items()} for s, per in totals.items()}


def markdown(summary: dict[str, dict[str, dict[str, Any]]]) -> str:
    def fmt(value: Any) -> str:
        return "–" if value is None else f"{value:.2f}"

    header = "| scenario | injected | " + " | ".join(
        f"{m} P | {m} R | {m} rank1 | {m} detected" for m in METHODS
    ) + " |"
    lines = [header, "|" + "---|" * (2 + 4 * len(METHODS))]
    for scenario, per in summary.items():
        injected = next(iter(per.values()))["injected"]
        cells = []
        for method in METHODS:
            figures = per[method]
            cells += [fmt(figures["precision"]), fmt(figures["recall"]), fmt(figures["rank1"]), str(figures["detected"])]
        lines.append(f"| {scenario} | {injected} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate(
    *,
    users: int,
    days: int,
    seeds: Sequence[int],
    scenarios: Sequence[Scenario],
    out: Path,
    keep: bool = False,
    log=print,
) -> dict[str, Any]:
    work_dir = Path(tempfile.mkdtemp(prefix="traffic_anomalies-eval-"))
    work_dir.chmod(0o755)
    results: list[RunResult] = []
    failures: list[dict[str, Any]] = []
    try:
        for scenario in scenarios:
            for seed in seeds:
                try:
                    result = run_one(scenario, seed, users=users, days=days, work_dir=work_dir, keep=keep)
                except Exception as exc:  # one failed build must not lose the other runs
                    failures.append({"scenario": scenario.name, "seed": seed, "error": str(exc)[:2000]})
                    log(f"{scenario.name} seed {seed}: FAILED: {str(exc).splitlines()[0]}")
                    continue
                results.append(result)
                line = ", ".join(
                    f"{m} P={c.figures()['precision']} R={c.figures()['recall']}" for m, c in result.methods.items()
                )
                log(f"{scenario.name} seed {seed}: {result.injected_pairs} injected pairs, {line} ({result.seconds}s)")
    finally:
        if not keep:
            shutil.rmtree(work_dir, ignore_errors=True)
    summary = summarise(results)
    report = {
        "users": users,
        "days": days,
        "seeds": list(seeds),
        "methods": list(METHODS),
        "summary": summary,
        "runs": [
            {**{k: v for k, v in asdict(r).items() if k != "methods"}, "methods": {m: c.figures() for m, c in r.methods.items()}}
            for r in results
        ],
        "failed_runs": failures,
        "markdown": markdown(summary),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(summary) + "\n")
    return report


def parse_scenarios(text: str) -> list[Scenario]:
    """``KIND:MAG:COUNT,...`` or ``none``; default: DEFAULT_SCENARIOS."""
    scenarios = []
    for item in text.split(","):
        parts = item.strip().split(":")
        if parts == ["none"]:
            scenarios.append(Scenario("none", 0, 0))
        elif len(parts) == 3:
            scenarios.append(Scenario(parts[0], float(parts[1]), int(parts[2])))
        else:
            raise argparse.ArgumentTypeError(f"bad scenario {item!r}: expected KIND:MAGNITUDE:COUNT or none")
    return scenarios


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``evaluate`` on a sub-command set; the handler is ``args.func``."""
    parser = subparsers.add_parser(
        "evaluate",
        help="precision and recall of the detectors on generated lakes with injected anomalies",
        description="Generate lakes with injected anomalies, build the pipeline into a schema per "
        "lake, and score each method's (user, hour) detections against the ground truth.",
    )
    parser.add_argument("--users", type=int, default=100, help="users per lake (default 100)")
    parser.add_argument("--days", type=int, default=35, help="days per lake (default 35)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="lake seeds (default 1 2)")
    parser.add_argument("--scenarios", type=parse_scenarios, default=None,
                        help="KIND:MAG:COUNT,... or none (default: spikes of 3, 5, 10 sigma, port scan, "
                        "off-hours, dormant wake-up, no anomaly)")
    parser.add_argument("--out", type=Path, default=PROJECT_DIR / "target" / "evaluation.json",
                        help="JSON report (a .md table is written beside it)")
    parser.add_argument("--keep", action="store_true", help="keep the lakes and schemas")
    parser.set_defaults(func=run_evaluate)
    return parser


def run_evaluate(args: argparse.Namespace) -> int:
    scenarios = args.scenarios or [Scenario(*s) for s in DEFAULT_SCENARIOS]
    report = evaluate(users=args.users, days=args.days, seeds=args.seeds, scenarios=scenarios, out=args.out, keep=args.keep)
    print(report["markdown"])
    print(f"report: {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m traffic_anomalies.evaluate")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["evaluate", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
