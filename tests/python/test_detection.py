"""Detection on a small real lake: a single-hour spike, the only anomaly of the lake, must make
its user the first outlier of that hour (fct_user_outliers, our method, rank_in_hour = 1).

The seed is fixed once (1), not searched for: the test asks the question of one lake. The
strength is the generator's default for spikes (10 sigma of the user's own count in that hour).

Both tests are expected to fail today (strict xfail, so the day they pass they must be turned
back into plain tests): on raw hourly flow counts the leading components and the SPE follow
the heaviest users, and a 10-sigma spike of an ordinary user moves neither (see
`traffic-anomalies evaluate`: absolute-loading rank1 and SPE recall for spikes).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from conftest import query

SPIKE_SIGMA = 10
SEED = 1

OPEN = pytest.mark.xfail(
    strict=True,
    reason="acceptance criterion not met yet: PCA on raw counts is dominated by heavy users; "
    "see the evaluation figures",
)


@pytest.fixture(scope="module")
def single_spike(module_dbt_project, lake_dir_factory):
    from traffic_anomalies.lake import AnomalySpec, generate_lake

    lake = generate_lake(
        lake_dir_factory("detect"), users=30, days=21, start=dt.date(2017, 2, 1), seed=SEED, clean=True,
        anomalies=[AnomalySpec("spike", SPIKE_SIGMA, 1)],
    )
    assert len(lake.ground_truth) == 1
    project = module_dbt_project
    lake_root = str(Path(lake.out_dir).resolve())
    project.run("run-operation", "stage_external_sources", vars={"lake_root": lake_root})
    project.run(
        "build", "--select", "+fct_user_outliers", "+fct_day_anomalies", "--exclude", "test_type:data",
        vars={"lake_root": lake_root},
    )
    return project, lake.ground_truth[0]


@OPEN
def test_the_spiking_user_is_ranked_first_in_its_hour(single_spike):
    project, truth = single_spike
    ranking = query(
        f"select user_name, outlier_score from {project.relation('fct_user_outliers')} "
        f"where method = 'absolute_loading' and hour_of_day = %s order by rank_in_hour limit 5",
        (truth.hour,),
    )
    assert ranking, f"no outlier at all in hour {truth.hour}"
    assert ranking[0][0] == truth.user_name, (
        f"{truth.user_name} spiked {SPIKE_SIGMA} sigma at {truth.day} {truth.hour}:00, "
        f"but the hour's first outliers are {ranking}"
    )


@OPEN
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
