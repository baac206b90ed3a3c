"""Detection quality on real (generated) lakes, through the database.

* A single-hour spike, the only anomaly of its lake, must make its user the first spike of that
  hour in fct_user_spikes (our method, `residual_spike`), on the right day. The seed is fixed
  once (1), not searched for; the strength is the generator's default for spikes (10 sigma of
  the user's own count in that hour).
* The issue's target, recall >= 0.95 at precision >= 0.9 for 5-sigma spikes, is asked of the
  evaluation itself (one small lake). It is not met, and cannot be on this traffic: 5-sigma spikes
  of light users are a handful of flows, and normal traffic holds many cells as extreme (see
  README, "Detection quality"). It is a strict expected failure, so the day it passes it must
  become a plain test.
* The day's SPE (fct_day_anomalies) does not single out a spike of an ordinary user either:
  the PCA runs on raw counts and its residual follows the heaviest users (strict xfail too).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from conftest import query

SPIKE_SIGMA = 10
SEED = 1


@pytest.fixture(scope="module")
def single_spike(module_dbt_project, lake_dir_factory):
    from traffic_anomalies_dev.lake import AnomalySpec, generate_lake

    lake = generate_lake(
        lake_dir_factory("detect"), users=30, days=21, start=dt.date(2017, 2, 1), seed=SEED, clean=True,
        anomalies=[AnomalySpec("spike", SPIKE_SIGMA, 1)],
    )
    assert len(lake.ground_truth) == 1
    project = module_dbt_project
    lake_root = str(Path(lake.out_dir).resolve())
    project.run("run-operation", "stage_external_sources", vars={"lake_root": lake_root})
    project.run(
        "build", "--select", "+fct_user_outliers", "+fct_day_anomalies", "+fct_user_spikes",
        "--exclude", "test_type:data", vars={"lake_root": lake_root},
    )
    return project, lake.ground_truth[0]


def test_the_spiking_user_is_ranked_first_in_its_hour(single_spike):
    project, truth = single_spike
    ranking = query(
        f"select user_name, activity_date, spike_score from {project.relation('fct_user_spikes')} "
        f"where hour_of_day = %s order by rank_in_hour limit 5",
        (truth.hour,),
    )
    assert ranking, f"no spike at all in hour {truth.hour}"
    user, day, _ = ranking[0]
    assert (user, str(day)) == (truth.user_name, truth.day), (
        f"{truth.user_name} spiked {SPIKE_SIGMA} sigma at {truth.day} {truth.hour}:00, "
        f"but the hour's first spikes are {ranking}"
    )


@pytest.mark.xfail(
    strict=True,
    reason="the PCA runs on raw counts: its SPE follows the heaviest users, not an ordinary user's spike",
)
def test_the_spike_day_is_the_most_anomalous_day_of_its_hour_for_that_user(single_spike):
    project, truth = single_spike
    rows = query(
        f"select activity_date, top_user_name, spe_ratio from {project.relation('fct_day_anomalies')} "
        f"where hour_of_day = %s order by spe_ratio desc nulls last limit 1",
        (truth.hour,),
    )
    assert rows and str(rows[0][0]) == truth.day and rows[0][1] == truth.user_name, (
        f"{truth.user_name} spiked at {truth.day} {truth.hour}:00; the hour's top SPE day is {rows}"
    )


@pytest.mark.xfail(
    strict=True,
    reason="target not met: 5-sigma spikes of light users are a few flows, and normal traffic "
    "holds many cells as extreme (README, Detection quality)",
)
def test_five_sigma_spikes_reach_the_target_recall_and_precision(database, tmp_path):
    from traffic_anomalies_dev.evaluate import Scenario, evaluate

    # One small lake (5 spikes): the target is asked of any lake, and one is enough to show it
    # unmet (the full evaluation, `traffic-anomalies evaluate`, is in the README).
    report = evaluate(
        users=30, days=21, window_days=14, seeds=[1], scenarios=[Scenario("spike", 5, 5)],
        out=tmp_path / "evaluation.json", log=lambda *_: None, with_ceiling=False,
    )
    assert not report["failed_runs"], report["failed_runs"]
    ours = report["summary"]["residual_spike"]["scenarios"]["spike:5"]
    assert ours["injected_pairs"] == 5
    assert ours["recall"] >= 0.95 and (ours["precision"] or 0) >= 0.9, ours
