"""The evaluation: matching on the day, chance recall, the ceiling's frozen threshold, the
generator's truth API against the lake it writes, and the report's summary on a tiny lake.

Everything but the last test runs without the database, on hand-made cases or small lakes.
"""

from __future__ import annotations

import collections
import csv
import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from traffic_anomalies_dev import ceiling
from traffic_anomalies_dev.lake import AnomalySpec, generate_lake, lake_truth
from traffic_anomalies_dev.scoring import Detections, Truth, Window, hit_probability, score

DAY, OTHER_DAY = "2017-01-05", "2017-01-04"


def test_a_cell_flagged_on_another_day_than_the_injected_one_is_not_a_hit() -> None:
    truth = Truth({("ann", DAY, 10): 1})
    window = Window(users=4, days=7)
    wrong_day = score(Detections("cell", frozenset({("ann", OTHER_DAY, 10)})), truth, window)
    assert (wrong_day.found_pairs, wrong_day.true_pairs, wrong_day.detected_pairs, wrong_day.incidents_found) == (0, 0, 1, 0)
    right_day = score(Detections("cell", frozenset({("ann", DAY, 10), ("ann", OTHER_DAY, 10)})), truth, window)
    # The pair is found, and counts once among the detected pairs (two of its days flagged).
    assert (right_day.found_pairs, right_day.true_pairs, right_day.detected_pairs, right_day.incidents_found) == (1, 1, 1, 1)
    # A pair detector names no day: flagging the pair finds it.
    pair = score(Detections("pair", frozenset({("ann", 10), ("bob", 3)})), truth, window)
    assert (pair.found_pairs, pair.detected_pairs, pair.incidents_found) == (1, 2, 1)


def test_chance_recall_on_a_hand_checkable_case() -> None:
    # One user, 5 days: 120 cells. 12 cells flagged at random hit a given cell with p = 12/120;
    # an incident of two cells (two hours, one day) is hit with 1 - C(118, 12) / C(120, 12)
    # = 1 - (108 * 107) / (120 * 119) = 2724 / 14280.
    assert hit_probability(120, 1, 12) == pytest.approx(0.1, abs=1e-12)
    assert hit_probability(120, 2, 12) == pytest.approx(2724 / 14280, abs=1e-12)
    assert hit_probability(120, 2, 12) == pytest.approx(1 - math.comb(118, 12) / math.comb(120, 12), abs=1e-12)
    assert hit_probability(120, 1, 0) == 0.0 and hit_probability(120, 1, 120) == 1.0
    truth = Truth({("ann", DAY, 10): 1, ("ann", DAY, 11): 1})
    flagged = frozenset(("ann", OTHER_DAY, h) for h in range(12))
    tally = score(Detections("cell", flagged), truth, Window(users=1, days=5))
    figures = tally.figures()
    assert figures["recall"] == 0.0 and figures["chance_recall"] == pytest.approx(0.1, abs=1e-4)
    assert figures["chance_incident_recall"] == pytest.approx(2724 / 14280, abs=1e-4)
    # 12 of the 24 pairs (hours 11-22) flagged: each injected pair is hit with p = 1/2, and 11:00 is.
    pairs = score(Detections("pair", frozenset(("ann", h) for h in range(11, 23))), truth, Window(users=1, days=5))
    assert pairs.figures()["chance_recall"] == 0.5 and pairs.figures()["recall"] == 0.5


def _read_counts(lake_dir: Path) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for path in sorted((lake_dir / "flows").glob("dt=*/part-*.csv.gz")):
        with gzip.open(path, "rt") as handle:
            for row in csv.DictReader(handle):
                stamp = row["start_time"]
                hour = int(stamp[11:13]) if "T" in stamp else int(stamp) % 86400 // 3600
                counts[(row["user_name"], path.parent.name[3:], hour)] += 1
    return counts


def test_the_truth_api_describes_the_lake_the_generator_writes(tmp_path: Path) -> None:
    arguments = dict(users=30, days=9, seed=5, clean=True, anomalies=[AnomalySpec("spike", 5, 2), AnomalySpec("off_hours", 5, 1)])
    generate_lake(tmp_path, **arguments)
    truth = lake_truth(**arguments)
    counts = _read_counts(tmp_path)
    cube = np.zeros_like(truth.counts)
    for (user, day, hour), n in counts.items():
        cube[truth.users.index(user), truth.days.index(day), hour] = n
    assert np.array_equal(cube, truth.counts)
    labels = Truth.from_lake(tmp_path)
    from_api = {(truth.users[u], truth.days[d], int(h)): int(truth.incident[u, d, h]) for u, d, h in zip(*truth.injected.nonzero())}
    assert labels.cells == from_api and len(set(from_api.values())) == 3
    # The mean is zero exactly where the user cannot have flows (absent), never below.
    assert (truth.expected >= 0).all() and (truth.counts[truth.expected == 0][~truth.injected[truth.expected == 0]] == 0).all()


def test_the_ceiling_threshold_is_frozen_on_clean_calibration_lakes() -> None:
    clean = [lake_truth(users=40, days=10, seed=s, clean=True, anomalies=[]) for s in (101, 102, 103, 104)]
    threshold = ceiling.calibrate(clean, window_days=7)
    false_pairs = [len({(u, h) for u, _, h in ceiling.detections(t, 7, threshold).flagged}) for t in clean]
    assert sum(false_pairs) <= ceiling.FALSE_PAIRS_TARGET * len(clean)
    # One step lower would flag more than the target allows: the threshold is the tightest one.
    maxima = np.sort(np.concatenate([ceiling.surprise(t, 7).max(axis=1).ravel() for t in clean]))[::-1]
    assert threshold == maxima[2] and maxima[2] < maxima[1]


def test_the_report_starts_with_a_summary_per_detector_and_scenario(database, tmp_path: Path) -> None:
    from traffic_anomalies_dev.evaluate import Scenario, evaluate

    report = evaluate(users=30, days=10, window_days=7, seeds=[1], scenarios=[Scenario("spike", 10, 2), Scenario("none", 0, 0)],
                      out=tmp_path / "evaluation.json", log=lambda *_: None)
    assert not report["failed_runs"], report["failed_runs"]
    assert next(iter(report)) == "summary"
    summary = report["summary"]
    assert set(summary) == {"residual_spike", "whole_day", "content", "incidents", "published", "absolute_loading", "spe_top_user",
                            "zscore_gt_5", "zscore_gt_10", "noise_ceiling"}
    for name, detector in summary.items():
        assert detector["clean_lakes"] == 1 and detector["false_pairs_per_clean_lake"] is not None, name
        figures = detector["scenarios"]["spike:10"]
        assert (figures["kind"], figures["strength"]) == ("spike", 10.0)
        for key in ("precision", "recall", "chance_recall", "incidents_found", "incidents"):
            assert key in figures, (name, key)
        assert figures["incidents"] == 2 and figures["injected_pairs"] == 2
        # Chance recall, recomputed from the flagged and available units: one injected cell
        # (or pair) per injected pair, so m / N.
        assert figures["chance_recall"] == pytest.approx(min(figures["flagged_units"] / figures["units"], 1.0), abs=1e-4)
        per_user = 24 * (7 if detector["grain"] == "cell" else 1)
        assert figures["units"] % per_user == 0 and 0 < figures["units"] <= 30 * per_user, (name, figures["units"])
    assert report["window_days"] == 7 and report["frozen_thresholds"]["noise_ceiling"]["calibration_seeds"][0] == 101
    written = (tmp_path / "evaluation.json").read_text()
    assert written.lstrip().startswith('{\n  "summary"')


def test_evaluation_seeds_may_not_be_calibration_seeds(tmp_path: Path) -> None:
    from traffic_anomalies_dev.evaluate import Scenario, evaluate

    with pytest.raises(ValueError, match="calibration seeds"):
        evaluate(users=30, days=10, window_days=7, seeds=[3, 101], scenarios=[Scenario("none", 0, 0)],
                 out=tmp_path / "e.json", log=lambda *_: None)


def test_a_bad_scenario_is_refused_by_name_before_any_lake_is_built() -> None:
    import argparse

    from traffic_anomalies_dev.evaluate import parse_scenarios

    assert [s.name for s in parse_scenarios("spike:5:2, none")] == ["spike:5", "none"]
    with pytest.raises(argparse.ArgumentTypeError, match="bad scenario 'foo:5:1': unknown anomaly kind 'foo'"):
        parse_scenarios("foo:5:1")
    with pytest.raises(argparse.ArgumentTypeError, match="bad scenario 'spike:-1:1': anomaly magnitude must be a positive"):
        parse_scenarios("spike:-1:1")
