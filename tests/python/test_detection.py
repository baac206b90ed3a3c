"""Detection quality on real (generated) lakes, through the database.

* A single-hour spike, the only anomaly of its lake, must make its user the first spike of that
  hour in fct_user_spikes (our method, `residual_spike`), on the right day. The seed is fixed
  once (1), not searched for; the strength is the generator's default for spikes (10 sigma of
  the user's own count in that hour).
* Each cell's tail probability (int_cell_spike_tails) is the exact negative-binomial tail,
  checked against a direct sum of the pmf from log-gamma in Python; the spike's is far below the
  night's threshold, which lets through at most spike_false_alarms cells on this lake's normal
  traffic (the spike is flagged, and at most one normal cell).
* A dormant user waking up (5 sigma) is the one anomalous day of the whole-day score
  (int_user_day_scores), whose tails are checked the same way.
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
import math
from pathlib import Path

import numpy as np
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
        "build", "--select", "+fct_user_outliers", "+fct_day_anomalies", "+fct_user_spikes", "+int_user_day_scores",
        "--exclude", "test_type:data", vars={"lake_root": lake_root},
    )
    return project, lake.ground_truth[0]


@pytest.fixture(scope="module")
def dormant_wakeup(database, tmp_path_factory, lake_dir_factory):
    """A lake whose only anomaly is a dormant user waking up (5 sigma), built in a schema of its own."""
    from conftest import DbtProject, drop_schemas, new_schema
    from traffic_anomalies_dev.lake import AnomalySpec, generate_lake

    lake = generate_lake(
        lake_dir_factory("dormant"), users=30, days=21, start=dt.date(2017, 2, 1), seed=SEED, clean=True,
        anomalies=[AnomalySpec("dormant_wakeup", 5, 1)],
    )
    project = DbtProject(schema=new_schema("m"), target_path=tmp_path_factory.mktemp("target"))
    lake_root = str(Path(lake.out_dir).resolve())
    project.run("run-operation", "stage_external_sources", vars={"lake_root": lake_root})
    project.run("build", "--select", "+int_user_day_scores", "--exclude", "test_type:data",
                vars={"lake_root": lake_root})
    yield project, lake.ground_truth
    drop_schemas(project.schema)


def test_a_dormant_user_waking_up_is_the_one_anomalous_day(dormant_wakeup):
    project, truth = dormant_wakeup
    woken = {(row.user_name, row.day) for row in truth}
    assert len(woken) == 1
    flagged = query(
        f"select users.user_name, days.activity_date, scores.day_flows, scores.expected_day_flows "
        f"from {project.relation('int_user_day_scores')} as scores "
        f"join {project.relation('int_pca_users')} as users using (user_index) "
        f"join {project.relation('int_pca_days')} as days using (day_index) where scores.is_anomalous"
    )
    assert {(u, str(d)) for u, d, _, _ in flagged} == woken, flagged


def test_day_tail_probabilities_are_the_exact_negative_binomial_tails(dormant_wakeup):
    project, _ = dormant_wakeup
    days = query(
        f"select day_flows, expected_day_flows, day_dispersion, tail_probability "
        f"from {project.relation('int_user_day_scores')} where tail_probability < 1 order by tail_probability, user_index, day_index"
    )
    assert len(days) > 20
    for flows, mean, dispersion, p in days[5::max(1, len(days) // 30)]:
        expected = _nb_upper_tail(int(flows), mean, dispersion)
        if expected > 1e-9:
            assert p == pytest.approx(expected, rel=1e-7), (flows, mean, dispersion)


def test_day_dispersion_adds_the_uncertainty_of_a_mean_read_off_few_flows(dormant_wakeup):
    """φ of a day = the other days' φ by moments + 1 / (their flows + ½), recomputed here from
    the hourly counts with numpy; the woken user's day, with (almost) no other flows, tests a
    φ near 2 and its surprise is −ln of the exact tail summed in logs (not capped near 690)."""
    project, truth = dormant_wakeup
    users = dict(query(f"select user_name, user_index from {project.relation('int_pca_users')}"))
    days = dict(query(f"select activity_date::text, day_index from {project.relation('int_pca_days')}"))
    cells = query(f"select col_id, row_id, value from {project.relation('int_pca_input')}")
    totals = np.zeros((max(users.values()) + 1, max(days.values()) + 1))
    for user, day, flows in cells:
        totals[user, day] += flows
    totals = totals[sorted(users.values())][:, sorted(days.values())]
    scored = query(f"select user_index, day_index, day_flows, day_dispersion, day_surprise "
                   f"from {project.relation('int_user_day_scores')}")
    assert len(scored) == totals.size
    user_pos = {u: k for k, u in enumerate(sorted(users.values()))}
    day_pos = {d: k for k, d in enumerate(sorted(days.values()))}
    for user, day, flows, dispersion, _ in scored[::7]:
        row = totals[user_pos[user]]
        assert flows == row[day_pos[day]]
        others = np.delete(row, day_pos[day])
        mean = others.mean()
        moments = max(0.0, (others.var() - mean) / mean**2) if mean > 0 else 0.0
        assert dispersion == pytest.approx(moments + 1 / (others.sum() + 0.5), rel=1e-9), (user, day)
    woken = truth[0]
    (flows, mean, dispersion, surprise), = query(
        f"select day_flows, expected_day_flows, day_dispersion, day_surprise "
        f"from {project.relation('int_user_day_scores')} where user_index = %s and day_index = %s",
        (users[woken.user_name], days[woken.day]))
    exact = -_nb_log_upper_tail(int(flows), mean, dispersion)
    # beyond 1e-9 the model bounds the tail by a geometric series: within a factor of 50
    assert exact - math.log(50) <= surprise <= exact + 1e-9, (flows, mean, dispersion, surprise, exact)


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


def _nb_upper_tail(flows: int, mean: float, dispersion: float) -> float:
    """P(X >= flows), X negative binomial (variance mean + dispersion mean^2), summed upward."""
    total = 0.0
    for k in range(flows, flows + 20000):
        if dispersion > 0:
            r = 1 / dispersion
            log_pmf = (math.lgamma(k + r) - math.lgamma(r) - math.lgamma(k + 1)
                       + r * math.log(r / (r + mean)) + k * math.log(mean / (r + mean)))
        else:
            log_pmf = -mean + k * math.log(mean) - math.lgamma(k + 1)
        term = math.exp(log_pmf)
        total += term
        if term < total * 1e-17 and k > flows + mean:
            break
    return total


def _nb_log_upper_tail(flows: int, mean: float, dispersion: float) -> float:
    """ln P(X >= flows) for the same law, summed in logs (no underflow however far the tail)."""
    r = 1 / dispersion
    logs = [math.lgamma(k + r) - math.lgamma(r) - math.lgamma(k + 1)
            + r * math.log(r / (r + mean)) + k * math.log(mean / (r + mean))
            for k in range(flows, flows + 20000)]
    top = max(logs)
    return top + math.log(sum(math.exp(v - top) for v in logs))


def test_tail_probabilities_are_the_exact_negative_binomial_tails(single_spike):
    project, _ = single_spike
    cells = query(
        f"select flows, tested_expected_flows, tested_dispersion, tail_probability "
        f"from {project.relation('int_cell_spike_tails')} where tail_probability < 1 "
        f"order by tail_probability, hour_of_day, day_index, user_index"
    )
    assert len(cells) > 100
    # the most extreme cells and a spread of ordinary ones
    for flows, mean, dispersion, p in cells[:10] + cells[10::max(1, len(cells) // 40)]:
        expected = _nb_upper_tail(int(flows), mean, dispersion)
        if expected > 1e-9:
            assert p == pytest.approx(expected, rel=1e-7), (flows, mean, dispersion)
        else:
            # below 1e-9 the model bounds the tail from above by a geometric series
            assert expected * (1 - 1e-9) <= p <= expected * 50, (flows, mean, dispersion, p, expected)


def test_the_spike_passes_the_fitted_threshold_with_at_most_one_false_cell(single_spike):
    """The stated rate is 0.25 false cells per night: one normal cell beside the spike is
    within it (a Poisson(0.25) count is 1 one night in five), two would be 2.6 % nights."""
    project, truth = single_spike
    flagged = query(
        f"select user_name, activity_date, hour_of_day, spike_surprise, surprise_threshold "
        f"from {project.relation('fct_user_spikes')}"
    )
    cells = {(u, str(d), h) for u, d, h, _, _ in flagged}
    assert (truth.user_name, truth.day, truth.hour) in cells, flagged
    assert len(cells) <= 2, flagged


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
