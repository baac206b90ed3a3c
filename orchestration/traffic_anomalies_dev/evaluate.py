"""`traffic-anomalies evaluate`: how well the marts find injected anomalies.

For every scenario (one anomaly kind at one strength) and seed, a lake is generated with the
generator's public API (:func:`~traffic_anomalies_dev.lake.generate_lake`), staged and built
with dbt into a schema of its own, and each detector's flags (:mod:`.detectors`) are scored
(:mod:`.scoring`) against the labels written with the lake (``ground_truth.csv``): cells are
matched on (user, day, hour), so a flag on the wrong day is not a hit; precision and recall per
(user, hour) pair and per incident, each recall beside its chance recall, and the false pairs
per clean lake (the ``none`` scenario). The noise ceiling (:mod:`.ceiling`) is scored on the
same seeds and the same window (var ``pca_window_days``, passed to dbt too).

No threshold is fitted to the evaluation: the detectors' are dbt vars at their declared
defaults (recorded in the report), the z-score references' are fixed, and the ceiling's is set
on clean calibration lakes of seeds ``CALIBRATION_SEEDS``, which evaluation seeds may not use.

The report (``--out``, JSON) starts with ``summary``: per detector, its grain,
``false_pairs_per_clean_lake`` and, per scenario (kind and strength), ``precision``,
``recall``, ``chance_recall``, ``incidents_found``/``incidents`` and more (see scoring.Tally).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traffic_anomalies import PROJECT_DIR
from traffic_anomalies_dev import ceiling, detectors
from traffic_anomalies_dev.scoring import Tally, Truth, Window, score, summary

# (kind, magnitude, incidents per lake): single-hour spikes of 3, 5 and 10 sigma, port scans,
# off-hours bursts, a dormant user waking up, and a lake with no anomaly at all.
DEFAULT_SCENARIOS: tuple[tuple[str, float, int], ...] = (
    ("spike", 3, 5),
    ("spike", 5, 5),
    ("spike", 10, 5),
    ("port_scan", 5, 3),
    ("port_scan", 10, 3),
    ("off_hours", 3, 3),
    ("dormant_wakeup", 5, 1),
    ("none", 0, 0),
)
DEFAULT_SEEDS: tuple[int, ...] = tuple(range(1, 9))
CALIBRATION_SEEDS: tuple[int, ...] = tuple(range(101, 109))
# The detectors' thresholds as the project declares them; evaluate never changes them.
# The generator keeps module state for its own worker processes: one lake generated at a time.
_GENERATING = threading.Lock()
FROZEN_VARS: tuple[str, ...] = ("spike_false_alarms", "day_false_alarms", "content_false_alarms",
                                 "outlier_threshold",
                                 "outlier_components", "spe_confidence", "spe_components", "pca_components")


@dataclass
class Scenario:
    kind: str
    magnitude: float
    count: int

    @property
    def name(self) -> str:
        return "none" if self.kind == "none" else f"{self.kind}:{self.magnitude:g}"

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "strength": None if self.kind == "none" else self.magnitude}

    def lake_arguments(self, seed: int, users: int, days: int) -> dict[str, Any]:
        """The generator's arguments for this scenario's lake of ``seed`` (lake and truth alike)."""
        from traffic_anomalies_dev.lake import AnomalySpec

        specs = [] if self.kind == "none" else [AnomalySpec(self.kind, float(self.magnitude), self.count)]
        return {"users": users, "days": days, "seed": seed, "clean": True, "anomalies": specs}


def project_vars() -> dict[str, Any]:
    import yaml

    return yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())["vars"]


def _dbt(args: Sequence[str], *, schema: str, dbt_vars: dict[str, Any], target_path: Path) -> None:
    """The dbt CLI (its supported interface); a failure raises with dbt's error lines."""
    command = [str(Path(sys.executable).parent / "dbt"), *args, "--project-dir", str(PROJECT_DIR),
               "--profiles-dir", str(PROJECT_DIR), "--target-path", str(target_path), "--log-path", str(target_path),
               "--vars", json.dumps(dbt_vars)]
    env = {**os.environ, "TA_SCHEMA": schema, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    done = subprocess.run(command, env=env, cwd=PROJECT_DIR, capture_output=True, text=True)
    if done.returncode != 0:
        errors = [line for line in done.stdout.splitlines() if "rror" in line or "FAIL" in line]
        raise RuntimeError(f"dbt {args[0]} failed: " + " | ".join(errors[-5:] or done.stdout.splitlines()[-5:]))


def _drop_schema(schema: str) -> None:
    conn = detectors._connect()
    try:
        with conn.cursor() as cur:
            for name in (schema, f"{schema}_lake"):
                cur.execute(f'drop schema if exists "{name}" cascade')
    finally:
        conn.close()


def run_one(scenario: Scenario, seed: int, *, users: int, days: int, window_days: int, work_dir: Path,
            keep: bool) -> tuple[dict[str, Tally], float]:
    """Generate, build and score one lake: a tally per detector, and the seconds it took."""
    from traffic_anomalies_dev.lake import generate_lake

    started = time.monotonic()
    lake_dir = Path(tempfile.mkdtemp(prefix=f"lake-{scenario.kind}-", dir=work_dir))
    schema = f"eval_{uuid.uuid4().hex[:10]}"
    target_path = work_dir / f"dbt-{schema}"
    try:
        with _GENERATING:
            generate_lake(lake_dir, **scenario.lake_arguments(seed, users, days))
        for path in [lake_dir, *lake_dir.rglob("*")]:  # the database server reads it as another OS user
            path.chmod(0o755 if path.is_dir() else 0o644)
        dbt_vars = {"lake_root": str(lake_dir), "pca_window_days": window_days}
        _dbt(["run-operation", "stage_external_sources"], schema=schema, dbt_vars=dbt_vars, target_path=target_path)
        # `run`, not `build`: the models' unit tests are the test suite's business (make test), not
        # each lake's; they were about 5 % of a lake's dbt time
        _dbt(["run", "--select", "+fct_user_outliers", "+fct_day_anomalies", "+fct_user_spikes", "+dim_days",
              "+dim_users", "+int_user_day_scores", "+fct_incidents"],
             schema=schema, dbt_vars=dbt_vars, target_path=target_path)
        found, window = detectors.read(schema)
        if window.days != window_days:
            raise RuntimeError(f"the built window has {window.days} days, not pca_window_days = {window_days}")
        truth = Truth.from_lake(lake_dir)
        return {name: score(flags, truth, window) for name, flags in found.items()}, time.monotonic() - started
    finally:
        if not keep:
            _drop_schema(schema)
            shutil.rmtree(lake_dir, ignore_errors=True)
            shutil.rmtree(target_path, ignore_errors=True)


def ceiling_tallies(scenarios: Sequence[Scenario], seeds: Sequence[int], *, users: int, days: int,
                    window_days: int) -> tuple[list[tuple[str, str, Tally]], float]:
    """The noise ceiling on every (scenario, seed) lake, with its threshold frozen beforehand."""
    from traffic_anomalies_dev.lake import lake_truth

    clean = Scenario("none", 0, 0)
    threshold = ceiling.frozen_threshold(lambda s: lake_truth(**clean.lake_arguments(s, users, days)),
                                         CALIBRATION_SEEDS, window_days)
    tallies = []
    for scenario in scenarios:
        for seed in seeds:
            truth = lake_truth(**scenario.lake_arguments(seed, users, days))
            labels = Truth({(truth.users[u], truth.days[d], int(h)): int(truth.incident[u, d, h])
                            for u, d, h in zip(*truth.injected.nonzero())})
            window = Window(users=int((truth.counts[:, -window_days:, :].sum(axis=(1, 2)) > 0).sum()),
                            days=min(window_days, days))
            flags = ceiling.detections(truth, window_days, threshold)
            tallies.append(("noise_ceiling", scenario.name, score(flags, labels, window)))
    return tallies, threshold


def markdown(report_summary: dict[str, Any]) -> str:
    """One table: per scenario, each detector's recall (chance recall) and precision."""
    def fmt(value: Any) -> str:
        return "–" if value is None else f"{value:.2f}"

    names = list(report_summary)
    scenario_names = list(dict.fromkeys(s for d in report_summary.values() for s in d["scenarios"]))
    lines = ["| scenario | " + " | ".join(f"{n} P / R (chance) / incidents" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for scenario in scenario_names:
        cells = []
        for name in names:
            f = report_summary[name]["scenarios"].get(scenario)
            cells.append("" if f is None else f"{fmt(f['precision'])} / {fmt(f['recall'])} ({fmt(f['chance_recall'])})"
                         f" / {f['incidents_found']} of {f['incidents']}")
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    lines.append("| false pairs per clean lake | " + " | ".join(
        fmt(report_summary[n]["false_pairs_per_clean_lake"]) for n in names) + " |")
    return "\n".join(lines)


def evaluate(*, users: int, days: int, seeds: Sequence[int], scenarios: Sequence[Scenario], out: Path,
             window_days: int | None = None, keep: bool = False, with_ceiling: bool = True, jobs: int = 1,
             log=print) -> dict[str, Any]:
    overlap = sorted(set(seeds) & set(CALIBRATION_SEEDS))
    if overlap:
        raise ValueError(f"seeds {overlap} are calibration seeds ({CALIBRATION_SEEDS[0]}-{CALIBRATION_SEEDS[-1]}): "
                         "evaluate on other seeds")
    from traffic_anomalies_dev.bench_pca import git_state

    measured = git_state()  # before the runs: the commit whose models and code are measured
    declared = project_vars()
    window_days = int(window_days or declared["pca_window_days"])
    if window_days > days:
        raise ValueError(f"the window ({window_days} days) is longer than the lakes ({days} days)")
    work_dir = Path(tempfile.mkdtemp(prefix="traffic_anomalies-eval-"))
    work_dir.chmod(0o755)
    tallies: list[tuple[str, str, Tally]] = []
    runs, failures = [], []
    cases = [(scenario, seed) for scenario in scenarios for seed in seeds]

    def run_case(case: tuple[Scenario, int]) -> tuple[dict[str, Tally] | None, float, str | None]:
        scenario, seed = case
        try:
            per_detector, seconds = run_one(scenario, seed, users=users, days=days, window_days=window_days,
                                            work_dir=work_dir, keep=keep)
        except Exception as exc:  # one failed build must not lose the other runs
            return None, 0.0, str(exc)
        return per_detector, seconds, None

    try:
        # Each lake is its own schema and dbt process: `jobs` of them at once, results kept in
        # the order of the cases so the report does not depend on which finished first.
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for (scenario, seed), (per_detector, seconds, error) in zip(cases, pool.map(run_case, cases)):
                if per_detector is None:
                    failures.append({"scenario": scenario.name, "seed": seed, "error": error[:2000]})
                    log(f"{scenario.name} seed {seed}: FAILED: {error.splitlines()[0] if error else '?'}")
                    continue
                tallies += [(name, scenario.name, tally) for name, tally in per_detector.items()]
                runs.append({"scenario": scenario.name, "seed": seed, "seconds": round(seconds, 1),
                             "detectors": {name: tally.figures() for name, tally in per_detector.items()}})
                log(f"{scenario.name} seed {seed}: " + ", ".join(
                    f"{n} P={t.figures()['precision']} R={t.figures()['recall']}" for n, t in per_detector.items())
                    + f" ({seconds:.0f}s)")
    finally:
        if not keep:
            shutil.rmtree(work_dir, ignore_errors=True)
    grains = dict(detectors.GRAINS)
    ceiling_threshold = None
    if with_ceiling and not failures:
        ceiling_rows, ceiling_threshold = ceiling_tallies(scenarios, seeds, users=users, days=days,
                                                          window_days=window_days)
        tallies += ceiling_rows
        grains["noise_ceiling"] = "cell"
    described = {s.name: s.describe() for s in scenarios}
    report_summary = summary(tallies, described, grains)
    report = {
        "summary": report_summary,
        "git": measured,
        "users": users,
        "days": days,
        "window_days": window_days,
        "seeds": list(seeds),
        "scenarios": [{"name": s.name, **s.describe(), "incidents_per_lake": s.count} for s in scenarios],
        "frozen_thresholds": {
            **{name: declared.get(name) for name in FROZEN_VARS},
            **{name: limit for name, limit in detectors.ZSCORE_LIMITS.items()},
            "noise_ceiling": {"surprise": ceiling_threshold, "calibration_seeds": list(CALIBRATION_SEEDS),
                              "false_pairs_per_clean_lake_target": ceiling.FALSE_PAIRS_TARGET},
        },
        "runs": runs,
        "failed_runs": failures,
        "markdown": markdown(report_summary),
    }
    if failures:  # results from some runs only are not the evaluation: keep the previous one
        return report
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(report["markdown"] + "\n")
    return report


def parse_scenarios(text: str) -> list[Scenario]:
    """``KIND:MAG:COUNT,...`` or ``none``; default: DEFAULT_SCENARIOS."""
    scenarios = []
    for item in text.split(","):
        parts = item.strip().split(":")
        if parts == ["none"]:
            scenarios.append(Scenario("none", 0, 0))
        elif len(parts) == 3:
            from traffic_anomalies_dev.lake import AnomalySpec

            try:
                AnomalySpec(parts[0], float(parts[1]), int(parts[2]))  # refused here, not in every run
                scenarios.append(Scenario(parts[0], float(parts[1]), int(parts[2])))
            except ValueError as exc:
                raise argparse.ArgumentTypeError(f"bad scenario {item!r}: {exc}") from None
        else:
            raise argparse.ArgumentTypeError(f"bad scenario {item!r}: expected KIND:MAGNITUDE:COUNT or none")
    return scenarios


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got: {text!r}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``evaluate`` on a sub-command set; the handler is ``args.func``."""
    parser = subparsers.add_parser(
        "evaluate",
        help="precision and recall of the detectors on generated lakes with injected anomalies",
        description="Generate lakes with injected anomalies, build the pipeline into a schema per lake, and "
        "score each detector's flags against the labels written with the lake, beside chance and the noise ceiling.",
    )
    parser.add_argument("--users", type=_positive, default=100, help="users per lake (default 100)")
    parser.add_argument("--days", type=_positive, default=35, help="days per lake (default 35)")
    parser.add_argument("--window-days", type=_positive, default=None,
                        help="var pca_window_days for the detectors and the ceiling (default: dbt_project.yml's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS),
                        help="lake seeds (default 1-8; 101-108 are the ceiling's calibration seeds)")
    parser.add_argument("--scenarios", type=parse_scenarios, default=None,
                        help="KIND:MAG:COUNT,... or none (default: spikes of 3, 5, 10 sigma, port scans of 5 and "
                        "10, off-hours 3, dormant wake-up 5, no anomaly)")
    parser.add_argument("--out", type=Path, default=PROJECT_DIR / "target" / "evaluation.json",
                        help="JSON report (a .md table is written beside it)")
    parser.add_argument("--jobs", type=_positive, default=1,
                        help="lakes built at once, each in its own schema and dbt process (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the lakes and schemas")
    parser.add_argument("--no-ceiling", dest="ceiling", action="store_false", help="skip the noise ceiling")
    parser.set_defaults(func=run_evaluate)
    return parser


def run_evaluate(args: argparse.Namespace) -> int:
    from traffic_anomalies import localdb

    scenarios = args.scenarios or [Scenario(*s) for s in DEFAULT_SCENARIOS]
    try:
        localdb.apply_connection_env()  # the project's database, for dbt and psycopg2 alike
        report = evaluate(users=args.users, days=args.days, seeds=args.seeds, scenarios=scenarios, out=args.out,
                          window_days=args.window_days, keep=args.keep, with_ceiling=args.ceiling,
                          jobs=args.jobs)
    except (ValueError, localdb.DatabaseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report["markdown"])
    if report["failed_runs"]:
        print(f"error: {len(report['failed_runs'])} of {len(report['failed_runs']) + len(report['runs'])} runs failed "
              f"(see above); {args.out} was not written", file=sys.stderr)
        return 1
    print(f"report: {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m traffic_anomalies_dev.evaluate")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["evaluate", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
