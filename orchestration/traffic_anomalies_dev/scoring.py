"""Scoring detections against what was injected: pairs, incidents, and what chance would find.

A detector reports either cells, (user, day, hour) — ``fct_user_spikes``, the top user of an
anomalous day in ``fct_day_anomalies``, the z-score references, the noise ceiling — or pairs,
(user, hour of day) with no day — ``fct_user_outliers`` (one PCA per hour over the window). An
injected (user, hour) pair is *found* by a cell detector only when it flags the injected cell
itself, on the injected day; a pair detector, which names no day, finds it when it flags the
pair. Precision is over the detected pairs (a cell detector's pair is true when one of its
flagged days is an injected cell), so both kinds are compared on the same (user, hour) grain.

An *incident* is one user's injection on one day (one or more hours, numbered in the lake's
``ground_truth.csv``); it is found when any of its cells (pairs) is.

*Chance recall* is the recall of a detector that flags as many units (cells for a cell
detector, pairs for a pair detector) as this one did, uniformly at random among all units of
the window: an injected pair with k injected cells among N is hit with probability
1 − C(N − k, m) / C(N, m) when m units are flagged. A recall near its chance recall means the
detector flags a lot, not that it finds anything.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

Pair = tuple[str, int]  # (user, hour)
Cell = tuple[str, str, int]  # (user, day as YYYY-MM-DD, hour)


@dataclass(frozen=True)
class Truth:
    """The injected cells of one lake, each with the incident it belongs to."""

    cells: dict[Cell, int]

    @classmethod
    def from_lake(cls, lake_dir: Path) -> Truth:
        """Read the labels the generator wrote with the lake (``ground_truth.csv``)."""
        with open(lake_dir / "ground_truth.csv", newline="") as handle:
            return cls({(row["user_name"], row["day"], int(row["hour"])): int(row["incident"])
                        for row in csv.DictReader(handle)})

    def pairs(self) -> dict[Pair, set[Cell]]:
        by_pair: dict[Pair, set[Cell]] = {}
        for cell in self.cells:
            by_pair.setdefault((cell[0], cell[2]), set()).add(cell)
        return by_pair

    def incidents(self) -> dict[int, set[Cell]]:
        by_incident: dict[int, set[Cell]] = {}
        for cell, incident in self.cells.items():
            by_incident.setdefault(incident, set()).add(cell)
        return by_incident


@dataclass(frozen=True)
class Detections:
    """What one detector flagged in one lake: cells (``grain='cell'``) or pairs (``'pair'``),
    and those ranked first in their hour."""

    grain: str
    flagged: frozenset
    first: frozenset = frozenset()


@dataclass(frozen=True)
class Window:
    """The units a detector could flag: ``users`` × ``days`` × 24 cells, ``users`` × 24 pairs."""

    users: int
    days: int

    def units(self, grain: str) -> int:
        return self.users * 24 * (self.days if grain == "cell" else 1)


def hit_probability(units: int, injected: int, flagged: int) -> float:
    """P(at least one of ``injected`` units is among ``flagged`` drawn at random from ``units``)."""
    if flagged <= 0 or injected <= 0:
        return 0.0
    if flagged > units - injected:
        return 1.0
    # C(N - k, m) / C(N, m) = prod_{i < k} (N - m - i) / (N - i)
    miss = math.exp(sum(math.log(units - flagged - i) - math.log(units - i) for i in range(injected)))
    return 1.0 - miss


@dataclass
class Tally:
    """Counts of one detector over one or more lakes of one scenario (they add up)."""

    lakes: int = 0
    flagged_units: int = 0  # cells or pairs, as the detector's grain
    units: int = 0  # all the cells or pairs of the windows: what chance draws from
    detected_pairs: int = 0
    true_pairs: int = 0
    injected_pairs: int = 0
    found_pairs: int = 0
    ranked_first: int = 0
    incidents: int = 0
    incidents_found: int = 0
    chance_found_pairs: float = 0.0
    chance_incidents_found: float = 0.0

    def add(self, other: Tally) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def figures(self) -> dict[str, Any]:
        def ratio(a: float, b: float) -> float | None:
            return round(a / b, 4) if b else None

        return {
            "precision": ratio(self.true_pairs, self.detected_pairs),
            "recall": ratio(self.found_pairs, self.injected_pairs),
            "chance_recall": ratio(self.chance_found_pairs, self.injected_pairs),
            "incidents_found": self.incidents_found,
            "incidents": self.incidents,
            "incident_recall": ratio(self.incidents_found, self.incidents),
            "chance_incident_recall": ratio(self.chance_incidents_found, self.incidents),
            "rank1": ratio(self.ranked_first, self.injected_pairs),
            "detected_pairs_per_lake": ratio(self.detected_pairs, self.lakes),
            **{k: v for k, v in asdict(self).items() if not k.startswith("chance_")},
        }


def _pair(unit: tuple) -> Pair:
    return (unit[0], unit[-1])


def score(detections: Detections, truth: Truth, window: Window) -> Tally:
    """One detector on one lake."""
    injected_pairs = truth.pairs()
    incidents = truth.incidents()
    if detections.grain == "cell":
        hits = {cell for cell in detections.flagged if cell in truth.cells}
        hit_pairs = {_pair(cell) for cell in hits}
        found_incidents = {truth.cells[cell] for cell in hits}
        first = {_pair(cell) for cell in detections.first if cell in truth.cells}
        size = lambda cells: len(cells)  # noqa: E731 - injected units of a pair or incident
    else:
        hit_pairs = {pair for pair in detections.flagged if pair in injected_pairs}
        found_incidents = {n for n, cells in incidents.items() if {_pair(c) for c in cells} & hit_pairs}
        first = {pair for pair in detections.first if pair in injected_pairs}
        size = lambda cells: len({_pair(c) for c in cells})  # noqa: E731
    units, flagged = window.units(detections.grain), len(detections.flagged)
    return Tally(
        lakes=1,
        flagged_units=flagged,
        units=units,
        detected_pairs=len({_pair(unit) for unit in detections.flagged}),
        true_pairs=len(hit_pairs),
        injected_pairs=len(injected_pairs),
        found_pairs=len(hit_pairs),
        ranked_first=len(first),
        incidents=len(incidents),
        incidents_found=len(found_incidents),
        chance_found_pairs=sum(hit_probability(units, size(c), flagged) for c in injected_pairs.values()),
        chance_incidents_found=sum(hit_probability(units, size(c), flagged) for c in incidents.values()),
    )


def summary(tallies: Iterable[tuple[str, str, Tally]], scenarios: dict[str, dict[str, Any]],
            grains: dict[str, str]) -> dict[str, Any]:
    """``{detector: {grain, false_pairs_per_clean_lake, clean_lakes, scenarios: {name: figures}}}``
    from (detector, scenario name, tally) triples; ``scenarios`` gives each name's kind and
    strength, a kind of ``none`` being a clean lake (its detections are all false)."""
    totals: dict[str, dict[str, Tally]] = {}
    for detector, scenario, tally in tallies:
        totals.setdefault(detector, {}).setdefault(scenario, Tally()).add(tally)
    out: dict[str, Any] = {}
    for detector, per_scenario in totals.items():
        clean = Tally()
        for name, tally in per_scenario.items():
            if scenarios[name]["kind"] == "none":
                clean.add(tally)
        out[detector] = {
            "grain": grains[detector],
            "false_pairs_per_clean_lake": round(clean.detected_pairs / clean.lakes, 3) if clean.lakes else None,
            "clean_lakes": clean.lakes,
            "scenarios": {
                name: {**scenarios[name], **tally.figures()}
                for name, tally in per_scenario.items() if scenarios[name]["kind"] != "none"
            },
        }
    return out
