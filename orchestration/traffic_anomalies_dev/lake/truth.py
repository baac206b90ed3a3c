"""What was injected: the labels written with the lake (``ground_truth.csv``) and, for
evaluation, the generator's own knowledge of every cell (its expected count and noise law)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from traffic_anomalies_dev.lake.generate import Plan
    from traffic_anomalies_dev.lake.spec import AnomalySpec


@dataclass(frozen=True)
class GroundTruthRow:
    """One injected anomalous (user, day, hour); ``incident`` numbers the incident it belongs to
    (1, 2, ...: one user, one day, one or more hours)."""

    user_name: str
    day: str
    hour: int
    kind: str
    magnitude: float
    incident: int


def ground_truth_rows(plan: Plan) -> list[GroundTruthRow]:
    rows = [
        GroundTruthRow(plan.population.names[i.user], plan.date(i.day).isoformat(), h, i.kind, i.magnitude, number)
        for number, i in enumerate(plan.incidents, start=1)
        for h in i.hours
    ]
    return sorted(rows, key=lambda r: (r.day, r.hour, r.user_name, r.kind))


@dataclass(frozen=True)
class LakeTruth:
    """Everything the generator knows about a lake's cells, which no detector can know.

    Arrays are indexed (user, day, hour) in the order of ``users`` and ``days``:

    * ``counts``: the flows of every cell, injected ones included (what the lake holds);
    * ``expected``: the mean the cell's baseline count was drawn around (0 while the user is
      absent or dormant); given it, the baseline count is negative binomial with gamma shape
      ``noise_shape[user]`` (a Poisson of a gamma-distributed rate);
    * ``incident``: the incident (as numbered in ``ground_truth.csv``) that raised the cell, 0
      for none.
    """

    users: tuple[str, ...]
    days: tuple[str, ...]
    counts: np.ndarray
    expected: np.ndarray
    noise_shape: np.ndarray
    incident: np.ndarray

    @property
    def injected(self) -> np.ndarray:
        return self.incident > 0


def truth_of_plan(plan: Plan) -> LakeTruth:
    counts = plan.counts.astype(np.int64)
    incident = np.zeros(counts.shape, dtype=np.int32)
    for number, i in enumerate(plan.incidents, start=1):
        for hour, extra in zip(i.hours, i.extra):
            counts[i.user, i.day, hour] += extra
            incident[i.user, i.day, hour] = number
    return LakeTruth(
        users=tuple(plan.population.names.tolist()),
        days=tuple(plan.date(d).isoformat() for d in range(plan.params.days)),
        counts=counts,
        expected=plan.expected.copy(),
        noise_shape=plan.population.hour_shape.copy(),
        incident=incident,
    )


def lake_truth(anomalies: list[AnomalySpec] | None = None, **arguments) -> LakeTruth:
    """The truth of the lake :func:`generate_lake` writes with the same arguments (without
    ``out_dir`` and ``workers``), computed without writing anything."""
    from traffic_anomalies_dev.lake.generate import build_plan, lake_params

    return truth_of_plan(build_plan(lake_params(anomalies=anomalies, **arguments)))
