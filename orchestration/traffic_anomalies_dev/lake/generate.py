"""Generating a lake: the plan (everything any file needs) and :func:`generate_lake`."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from traffic_anomalies_dev.lake.anomalies import Incident, apply_dormancy, place_incidents, size_incidents
from traffic_anomalies_dev.lake.files import (
    MalformedRow, clear_old_flow_files, fmt_number, write_csv, write_flow_files, write_manifest,
)
from traffic_anomalies_dev.lake.spec import (
    DEFAULT_ANOMALIES, DEFAULT_ANOMALY_DAYS, DEFAULT_DAYS, DEFAULT_EPOCH_SHARE, DEFAULT_MALFORMED_RATE,
    DEFAULT_PARTS_PER_DAY, DEFAULT_SEED, DEFAULT_START, DEFAULT_USERS, STREAM_FORMAT, AnomalySpec, LakeParams, as_date,
)
from traffic_anomalies_dev.lake.truth import GroundTruthRow, ground_truth_rows
from traffic_anomalies_dev.lake.users import Destinations, Population, build_destinations, build_population, simulate_counts


@dataclass
class LakeSummary:
    """What :func:`generate_lake` wrote."""

    out_dir: Path
    files: list[Path]
    valid_lines: int
    malformed_lines: int
    incidents: int
    ground_truth: list[GroundTruthRow]
    malformed: list[MalformedRow]
    users: list[str]
    seconds: float = 0.0

    @property
    def flows_dir(self) -> Path:
        return self.out_dir / "flows"

    @property
    def ground_truth_path(self) -> Path:
        return self.out_dir / "ground_truth.csv"

    @property
    def malformed_path(self) -> Path:
        return self.out_dir / "malformed.csv"

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / "manifest.json"

    def one_line(self) -> str:
        return (
            f"lake: {len(self.files)} files, {self.valid_lines + self.malformed_lines} lines "
            f"({self.valid_lines} valid, {self.malformed_lines} malformed), "
            f"{self.incidents} anomalies ({len(self.ground_truth)} ground-truth rows), "
            f"{len(self.users)} users, {self.seconds:.1f}s -> {self.out_dir}"
        )


def generate_lake(
    out_dir: str | os.PathLike[str],
    users: int = DEFAULT_USERS,
    days: int = DEFAULT_DAYS,
    start: str | dt.date = DEFAULT_START,
    seed: int = DEFAULT_SEED,
    clean: bool = False,
    anomalies: Sequence[AnomalySpec] | None = None,
    malformed_rate: float = DEFAULT_MALFORMED_RATE,
    parts_per_day: int = DEFAULT_PARTS_PER_DAY,
    anomaly_days: int = DEFAULT_ANOMALY_DAYS,
    epoch_share: float = DEFAULT_EPOCH_SHARE,
    user_style: str = "names",
    workers: int | None = None,
) -> LakeSummary:
    """Write a sample lake to ``out_dir`` and return what was written.

    ``anomalies=None`` injects :data:`DEFAULT_ANOMALIES`; ``[]`` injects none. Anomalies fall in
    the last ``anomaly_days`` days. ``user_style`` is ``"names"`` (``jane.doe``, ``svc_backup``)
    or ``"ids"`` (``u00042``). ``workers`` (default: up to 4 processes for large lakes) does not
    change the output. Earlier ``flows/dt=*/part-*.csv.gz`` files in ``out_dir`` are removed.
    """
    started = time.perf_counter()
    params = lake_params(
        users=users, days=days, start=start, seed=seed, clean=clean, anomalies=anomalies,
        malformed_rate=malformed_rate, parts_per_day=parts_per_day, anomaly_days=anomaly_days,
        epoch_share=epoch_share, user_style=user_style,
    )
    out = Path(out_dir)
    plan = build_plan(params)
    clear_old_flow_files(out)
    results = write_flow_files(out, plan, workers)
    ground_truth = ground_truth_rows(plan)
    malformed = [row for result in results for row in result.malformed]
    write_csv(out / "ground_truth.csv", ("user_name", "day", "hour", "kind", "magnitude", "incident"),
              ((r.user_name, r.day, r.hour, r.kind, fmt_number(r.magnitude), r.incident) for r in ground_truth))
    write_csv(out / "malformed.csv", ("file", "line_number", "kind"),
              ((r.file, r.line_number, r.kind) for r in malformed))
    write_manifest(out / "manifest.json", params, plan, results, ground_truth)
    return LakeSummary(
        out_dir=out,
        files=[out / r.relpath for r in results],
        valid_lines=sum(r.valid_lines for r in results),
        malformed_lines=len(malformed),
        incidents=len(plan.incidents),
        ground_truth=ground_truth,
        malformed=malformed,
        users=list(plan.population.names),
        seconds=time.perf_counter() - started,
    )


def lake_params(
    users: int = DEFAULT_USERS,
    days: int = DEFAULT_DAYS,
    start: str | dt.date = DEFAULT_START,
    seed: int = DEFAULT_SEED,
    clean: bool = False,
    anomalies: Sequence[AnomalySpec] | None = None,
    malformed_rate: float = DEFAULT_MALFORMED_RATE,
    parts_per_day: int = DEFAULT_PARTS_PER_DAY,
    anomaly_days: int = DEFAULT_ANOMALY_DAYS,
    epoch_share: float = DEFAULT_EPOCH_SHARE,
    user_style: str = "names",
) -> LakeParams:
    """The checked parameters of :func:`generate_lake` (same arguments, same defaults)."""
    params = LakeParams(
        users=users,
        days=days,
        start=as_date(start),
        seed=seed,
        clean=clean,
        anomalies=tuple(DEFAULT_ANOMALIES if anomalies is None else anomalies),
        malformed_rate=0.0 if clean else malformed_rate,
        parts_per_day=parts_per_day,
        anomaly_days=min(anomaly_days, days),
        epoch_share=epoch_share,
        user_style=user_style,
    )
    params.validate()
    return params


# The plan: everything needed to write any file independently.


@dataclass(frozen=True)
class Plan:
    params: LakeParams
    population: Population
    destinations: Destinations
    counts: np.ndarray  # (users, days, 24) baseline flows, before the incidents' extra flows
    expected: np.ndarray  # (users, days, 24) the mean each baseline count was drawn around
    incidents: list[Incident]
    epoch_files: frozenset[tuple[int, int]]
    users_by_part: list[np.ndarray]

    def date(self, d: int) -> dt.date:
        return self.params.start + dt.timedelta(days=d)

    def relpath(self, d: int, part: int) -> str:
        return f"flows/dt={self.date(d).isoformat()}/part-{part:04d}.csv.gz"


def build_plan(params: LakeParams) -> Plan:
    pop = build_population(params)
    counts, expected = simulate_counts(pop, params)
    incidents = place_incidents(pop, counts, params)
    apply_dormancy(counts, expected, incidents)
    incidents = size_incidents(pop, counts, incidents)
    return Plan(
        params=params,
        population=pop,
        destinations=build_destinations(params.seed),
        counts=counts,
        expected=expected,
        incidents=incidents,
        epoch_files=choose_epoch_files(params),
        users_by_part=[np.flatnonzero(pop.part == p) for p in range(params.parts_per_day)],
    )


def choose_epoch_files(params: LakeParams) -> frozenset[tuple[int, int]]:
    """Files whose timestamps are epoch seconds; both forms present whenever there are 2+ files."""
    rng = np.random.default_rng([params.seed, STREAM_FORMAT])
    files = [(d, p) for d in range(params.days) for p in range(params.parts_per_day)]
    draws = rng.random(len(files))
    epoch = {f for f, r in zip(files, draws) if r < params.epoch_share}
    if len(files) >= 2 and 0.0 < params.epoch_share < 1.0:
        if not epoch:
            epoch.add(files[int(np.argmin(draws))])
        elif len(epoch) == len(files):
            epoch.discard(files[int(np.argmax(draws))])
    return frozenset(epoch)
