"""`traffic-anomalies evaluate`: how well the marts find injected anomalies.

For every scenario (one anomaly kind at one strength) and seed, a lake is generated with the
lake generator's public API (`generate_lake`, `AnomalySpec`), staged and built with dbt into a
schema of its own, and the detections of each method are compared with the lake's
`ground_truth.csv`, as (user, hour of day) pairs:

* ``residual_spike``    fct_user_spikes (ours): cells whose flow count rises above the user's
                        own days × hours expectation by more than the Bonferroni threshold of
                        var spike_false_alarms;
* ``published``         fct_user_outliers, method published (positive loadings > 0.1 on any
                        kept component, as first published);
* ``absolute_loading``  fct_user_outliers, method absolute_loading (absolute loadings on the
                        leading components: the published method with its sign bug fixed);
* ``spe_top_user``      fct_day_anomalies: the top contributor of every anomalous day.
* ``zscore_gt_5``, ``zscore_gt_10``  a reference, not PCA: the (user, hour) pairs whose count on
                        some day of the window is more than 5 (10) of the user's own standard
                        deviations (over the other days, floored at 1 flow) above the mean of
                        the other days. It shows how often normal traffic alone already holds
                        such deviations, i.e. the precision any per-cell detector can reach.

Precision = detected pairs that are injected / detected pairs; recall = injected pairs
detected / injected pairs; both summed over seeds. ``rank1`` is the share of injected pairs
whose user is ranked first in that hour by the method (fct_user_outliers.rank_in_hour = 1, or
the anomalous day with the largest spe_ratio of the hour names the user; for residual_spike
the user's spike is the hour's largest score). A scenario without
anomalies ("none") measures the false detections on normal traffic alone.

``--ceiling`` adds the noise ceiling of each scenario (``noise_ceiling``): the best recall at
precision >= 0.9 that a detector knowing the generator's true expected count of every cell and
its noise law would reach on the same lakes. No real detector knows that much, so no detector
can be expected to do better; it tells a weak detector from an impossible target.

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

METHODS: tuple[str, ...] = ("residual_spike", "published", "absolute_loading", "spe_top_user", "zscore_gt_5", "zscore_gt_10")

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
        from traffic_anomalies_dev.lake import AnomalySpec

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
        f'select user_name, hour_of_day, rank_in_hour from "{schema}".fct_user_spikes'
    ):
        detected["residual_spike"].add((user, hour))
        if rank == 1:
            first["residual_spike"].add((user, hour))
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
    from traffic_anomalies_dev.lake import generate_lake

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
            ["build", "--select", "+fct_user_outliers", "+fct_day_anomalies", "+fct_user_spikes", "--exclude", "test_type:data"],
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


def markdown(summary: dict[str, dict[str, dict[str, Any]]], ceiling: dict[str, dict[str, Any]] | None = None) -> str:
    def fmt(value: Any) -> str:
        return "–" if value is None else f"{value:.2f}"

    header = "| scenario | injected | " + " | ".join(
        f"{m} P | {m} R | {m} rank1 | {m} detected" for m in METHODS
    ) + (" | ceiling R at P ≥ 0.9 | ceiling P at R ≥ 0.95 |" if ceiling else " |")
    lines = [header, "|" + "---|" * (2 + 4 * len(METHODS) + (2 if ceiling else 0))]
    for scenario, per in summary.items():
        injected = next(iter(per.values()))["injected"]
        cells = []
        for method in METHODS:
            figures = per[method]
            cells += [fmt(figures["precision"]), fmt(figures["recall"]), fmt(figures["rank1"]), str(figures["detected"])]
        if ceiling:
            best = ceiling.get(scenario, {})
            cells += [fmt(best.get("best_recall_at_precision_0.9")), fmt(best.get("precision_at_recall_0.95"))]
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
    ceiling: bool = False,
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
    ceilings = {
        scenario.name: noise_ceiling(scenario, seeds, users=users, days=days)
        for scenario in scenarios if ceiling and scenario.kind != "none"
    }
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
        "ceiling": ceilings,
        "markdown": markdown(summary, ceilings),
    }
    if failures:  # results from some runs only are not the evaluation: keep the previous one
        return report
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(report["markdown"] + "\n")
    return report


# --- the noise ceiling -------------------------------------------------------------------------


def _nb_log_tail(x, mu, shape):
    """log P(X >= x) for X negative binomial with mean ``mu`` and gamma shape ``shape`` (arrays)."""
    import math

    import numpy as np

    x = np.asarray(x, dtype=float)
    mu = np.asarray(mu, dtype=float)
    shape = np.asarray(shape, dtype=float)
    q = mu / (shape + mu)
    lgamma = np.vectorize(math.lgamma)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pmf = (lgamma(x + shape) - lgamma(shape) - lgamma(x + 1)
                   + shape * np.log(shape / (shape + mu)) + x * np.log(np.where(q > 0, q, 1.0)))
        total, term = np.ones_like(x), np.ones_like(x)
        for j in range(4000):  # P(X >= x) = pmf(x) * sum_j prod_{i<j} ratio(x + i)
            term = term * (x + j + shape) / (x + j + 1) * q
            total += term
            if term.max(initial=0.0) < 1e-12 * total.min(initial=1.0):
                break
        tail = np.minimum(log_pmf + np.log(total), 0.0)
    tail = np.where(mu <= 0, np.where(x > 0, -np.inf, 0.0), tail)
    return np.where(x <= 0, 0.0, tail)


def noise_ceiling(scenario: Scenario, seeds: Sequence[int], *, users: int, days: int, window: int = 28) -> dict[str, Any]:
    """What the best possible detector reaches on the generator's traffic (no database).

    It knows what no detector can: each cell's true expected count (the user's volume, weekday,
    day factor, presence and rhythm shift of that day) and the noise law around it (Poisson
    with a gamma-distributed rate: a negative binomial with the user's shape). It scores every
    cell of the window by its tail probability P(X >= x), every (user, hour) by its most
    extreme day, and reports the best recall at precision >= 0.9 and the precision at recall
    >= 0.95 over all thresholds, pooled over seeds. The baseline draws are replayed from the
    generator's own random streams and checked against its counts, so a change of the
    generator makes this raise instead of reporting a wrong ceiling.
    """
    import datetime as dt

    import numpy as np

    from traffic_anomalies import lake

    scores, labels = [], []
    for seed in seeds:
        params = lake._Params(
            users=users, days=days, start=lake._as_date(lake.DEFAULT_START), seed=seed, clean=True,
            anomalies=tuple(scenario.specs()), malformed_rate=0.0, parts_per_day=lake.DEFAULT_PARTS_PER_DAY,
            anomaly_days=min(lake.DEFAULT_ANOMALY_DAYS, days), epoch_share=lake.DEFAULT_EPOCH_SHARE,
            user_style="names",
        )
        params.validate()
        plan = lake._build_plan(params)
        pop = plan.population
        mu = np.zeros(plan.counts.shape)
        replay = np.zeros(plan.counts.shape, dtype=np.int64)
        for d in range(days):  # the draws of lake._simulate_day, in its order
            rng = np.random.default_rng([params.seed, lake._STREAM_COUNTS, d])
            weekday = (params.start + dt.timedelta(days=d)).weekday()
            day_factor = rng.gamma(pop.day_shape, 1.0 / pop.day_shape)
            sick = (rng.random(pop.size) < 0.015) & (weekday < 5) & pop.jitter
            vacation = (pop.absent_days[:, 0] <= d) & (d < pop.absent_days[:, 1])
            shift = rng.choice([-1, 0, 1], size=pop.size, p=[0.15, 0.7, 0.15]) * pop.jitter
            hours = (np.arange(24)[None, :] - shift[:, None]) % 24
            profile = np.take_along_axis(pop.profile, hours, axis=1)
            hour_noise = rng.gamma(pop.hour_shape[:, None], 1.0 / pop.hour_shape[:, None], (pop.size, 24))
            volume = pop.level * pop.dow_factor[:, weekday] * day_factor * ~(sick | vacation)
            mu[:, d, :] = volume[:, None] * profile
            replay[:, d, :] = rng.poisson(volume[:, None] * profile * hour_noise)
        counts = plan.counts.astype(float)
        silenced = replay != plan.counts  # only dormancy may have changed the draws
        if np.any(plan.counts[silenced] != 0):
            raise RuntimeError("the lake generator's baseline draws changed: update noise_ceiling")
        mu[silenced] = 0.0
        truth = np.zeros((pop.size, 24), dtype=bool)
        for incident in plan.incidents:
            for hour, extra in zip(incident.hours, incident.extra):
                counts[incident.user, incident.day, hour] += extra
                truth[incident.user, hour] = True
        first = max(0, days - window)
        shape = np.broadcast_to(pop.hour_shape[:, None, None], counts[:, first:, :].shape)
        surprise = -_nb_log_tail(counts[:, first:, :], mu[:, first:, :], shape)
        scores.append(surprise.max(axis=1).ravel())
        labels.append(truth.ravel())
    score, label = np.concatenate(scores), np.concatenate(labels)
    result: dict[str, Any] = {"injected": int(label.sum()), "seeds": list(seeds), "users": users, "days": days}
    if not label.any():
        return result
    order = np.argsort(-score, kind="stable")
    hits = np.cumsum(label[order])
    precision = hits / np.arange(1, len(order) + 1)
    recall = hits / label.sum()
    ok = precision >= 0.9
    at = int(np.argmax(recall >= 0.95))
    result.update({
        "best_recall_at_precision_0.9": round(float(recall[ok].max()) if ok.any() else 0.0, 4),
        "precision_at_recall_0.95": round(float(precision[at]), 4),
        "false_pairs_at_recall_0.95": int(at + 1 - hits[at]),
    })
    return result


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
    parser.add_argument("--users", type=_positive, default=100, help="users per lake (default 100)")
    parser.add_argument("--days", type=_positive, default=35, help="days per lake (default 35)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="lake seeds (default 1 2)")
    parser.add_argument("--scenarios", type=parse_scenarios, default=None,
                        help="KIND:MAG:COUNT,... or none (default: spikes of 3, 5, 10 sigma, port scan, "
                        "off-hours, dormant wake-up, no anomaly)")
    parser.add_argument("--out", type=Path, default=PROJECT_DIR / "target" / "evaluation.json",
                        help="JSON report (a .md table is written beside it)")
    parser.add_argument("--keep", action="store_true", help="keep the lakes and schemas")
    parser.add_argument("--ceiling", action="store_true",
                        help="also compute the noise ceiling: what a detector knowing the generator's true "
                        "expected counts and noise law would reach on the same lakes (no database)")
    parser.set_defaults(func=run_evaluate)
    return parser


def run_evaluate(args: argparse.Namespace) -> int:
    scenarios = args.scenarios or [Scenario(*s) for s in DEFAULT_SCENARIOS]
    report = evaluate(users=args.users, days=args.days, seeds=args.seeds, scenarios=scenarios, out=args.out, keep=args.keep,
                      ceiling=args.ceiling)
    print(report["markdown"])
    if report["failed_runs"]:
        print(f"error: {len(report['failed_runs'])} of {len(report['failed_runs']) + len(report['runs'])} runs failed "
              f"(see above); {args.out} was not written", file=sys.stderr)
        return 1
    print(f"report: {args.out}")
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got: {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m traffic_anomalies_dev.evaluate")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["evaluate", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
