"""fct_incidents on a generated lake, through the database (dbt build, two nights).

* A single-hour spike (20 sigma), the only anomaly of its lake, is an incident of the night of
  its day: its user and day, its hour among the incident's hours, `residual_spike` among its
  detectors, new that night (first reported by this run).
* The evidence is the lake's: flows and bytes of the incident's hours, and the usual flows of
  those hours (the mean of the same hours on the user's other days of the window), are
  recomputed here with numpy from the lake's own CSV files.
* The next night reports it again under the same id, not new: its first run stays the first
  night's.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from pathlib import Path

import numpy as np
import pytest

from conftest import query

SEED = 1
START = dt.date(2017, 2, 1)
DAYS = 22
# strong enough to be flagged on its own day, the last of the first night's window (10 sigma of a
# light user is not always)
SPIKE_SIGMA = 20


@pytest.fixture(scope="module")
def two_nights(module_dbt_project, lake_dir_factory):
    from traffic_anomalies_dev.lake import AnomalySpec, generate_lake

    lake = generate_lake(
        lake_dir_factory("incidents"), users=30, days=DAYS, start=START, seed=SEED, clean=True,
        anomalies=[AnomalySpec("spike", SPIKE_SIGMA, 1)],
    )
    (truth,) = lake.ground_truth
    first = dt.date.fromisoformat(truth.day)
    second = first + dt.timedelta(days=1)
    # the fixed seed puts the spike before the lake's last day, so that a next night exists
    assert second < START + dt.timedelta(days=DAYS), truth
    project = module_dbt_project
    lake_root = str(Path(lake.out_dir).resolve())
    project.run("run-operation", "stage_external_sources", vars={"lake_root": lake_root})
    marts = {}
    for night, run_id in ((first, "night-one"), (second, "night-two")):
        vars = {"lake_root": lake_root, "run_date": night.isoformat(), "run_id": run_id}
        project.run("seed", vars=vars)
        project.run("build", "--select", "+fct_incidents", "--exclude", "resource_type:seed", vars=vars)
        marts[run_id] = query(
            f"select incident_id, user_name, activity_date, hours, detectors, kind, is_new, first_run_id, "
            f"first_run_date, run_id, flows, usual_flows, bytes, rank_in_night, score "
            f"from {project.relation('fct_incidents')} order by rank_in_night"
        )
    return project, truth, lake, marts


def _incident(rows, truth):
    found = [r for r in rows if (r[1], str(r[2])) == (truth.user_name, truth.day)]
    assert len(found) == 1, (truth, rows)
    return found[0]


def test_the_spike_is_a_new_incident_with_its_hour(two_nights):
    _, truth, _, marts = two_nights
    row = _incident(marts["night-one"], truth)
    incident_id, _, _, hours, detectors, kind, is_new, first_run_id, first_run_date, run_id = row[:10]
    assert truth.hour in hours and hours == sorted(set(hours)), row
    assert "residual_spike" in detectors, row
    assert is_new and first_run_id == run_id == "night-one" and str(first_run_date) == truth.day, row
    assert kind in {"spike", "off_hours"}, row
    # ranks are 1..n by score
    ranks = [r[13] for r in marts["night-one"]]
    assert ranks == list(range(1, len(ranks) + 1))
    scores = [r[14] for r in marts["night-one"]]
    assert scores == sorted(scores, reverse=True)


def test_the_next_night_reports_it_again_not_new(two_nights):
    _, truth, _, marts = two_nights
    first = _incident(marts["night-one"], truth)
    second = _incident(marts["night-two"], truth)
    assert second[0] == first[0], (first, second)
    assert second[6] is False and second[7] == "night-one" and str(second[8]) == truth.day, second
    assert second[9] == "night-two"


def test_the_evidence_is_the_users_own_flows(two_nights):
    """Flows, bytes and usual flows of the incident's hours, from the user's staged flows summed
    here (numpy) per day and hour over the first night's window (every day of the lake up to
    the spike's: the lake is shorter than pca_window_days)."""
    project, truth, _, marts = two_nights
    row = _incident(marts["night-one"], truth)
    hours, flows, usual_flows, size = row[3], row[10], row[11], row[12]
    first = dt.date.fromisoformat(truth.day)
    staged = query(
        f"select activity_date - %s, hour_of_day, bytes from {project.relation('stg_flows')} "
        f"where user_name = %s and activity_date <= %s",
        (START, truth.user_name, first),
    )
    days = (first - START).days + 1
    counts, volumes = np.zeros((days, 24)), np.zeros((days, 24))
    for day, hour, volume in staged:
        counts[day, hour] += 1
        volumes[day, hour] += volume
    others = np.arange(days) != days - 1
    assert flows == counts[-1, hours].sum()
    assert size == volumes[-1, hours].sum()
    assert usual_flows == pytest.approx(counts[others][:, hours].sum() / (days - 1), rel=1e-9)
    assert flows > 3 * usual_flows, row
