"""fct_incidents on a generated lake, through the database (dbt build, two nights).

* A single-hour spike (20 sigma), the only anomaly of its lake, is an incident of the night of
  its day: its user and day, its hour among the incident's hours, `residual_spike` among its
  detectors, new that night (first reported by this run).
* The evidence is the lake's: flows and bytes of the incident's hours, and the usual flows of
  those hours (the mean of the same hours on the user's other days of the window), are
  recomputed here with numpy from the lake's own CSV files.
* The next night reports it again under the same id, not new: its first run stays the first
  night's.
* A lake with a port scan (5 sigma), an off-hours burst (3 sigma) and a dormant user waking up
  (5 sigma): each is an incident with its injected hours, of its kind, and the content
  features of the scan's cell (ports of one host, new hosts on one port, big flows to new
  hosts) are those recomputed here from the user's staged flows; the content tails are the
  exact negative-binomial tails (summed in Python, as test_detection does for the counts).
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from pathlib import Path

import numpy as np
import pytest

from conftest import query
from test_detection import _nb_upper_tail

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


KINDS = {"port_scan": "port_scan", "off_hours": "off_hours", "dormant_wakeup": "dormant_wake_up"}


@pytest.fixture(scope="module")
def mixed(database, tmp_path_factory, lake_dir_factory):
    from conftest import DbtProject, drop_schemas, new_schema
    from traffic_anomalies_dev.lake import AnomalySpec, generate_lake

    lake = generate_lake(
        lake_dir_factory("mixed"), users=30, days=21, start=START, seed=SEED, clean=True,
        anomalies=[AnomalySpec("port_scan", 5, 1), AnomalySpec("off_hours", 3, 1), AnomalySpec("dormant_wakeup", 5, 1)],
    )
    project = DbtProject(schema=new_schema("m"), target_path=tmp_path_factory.mktemp("target"))
    lake_root = str(Path(lake.out_dir).resolve())
    vars = {"lake_root": lake_root, "run_id": "mixed"}
    project.run("run-operation", "stage_external_sources", vars=vars)
    project.run("seed", vars=vars)
    project.run("build", "--select", "+fct_incidents", "--exclude", "resource_type:seed", vars=vars)
    yield project, lake.ground_truth
    drop_schemas(project.schema)


def test_each_injected_anomaly_is_an_incident_of_its_kind(mixed):
    project, truth = mixed
    incidents = {
        (user, str(day)): (hours, kind, detectors)
        for user, day, hours, kind, detectors in query(
            f"select user_name, activity_date, hours, kind, detectors from {project.relation('fct_incidents')}"
        )
    }
    injected: dict[tuple[str, str], tuple[set[int], str]] = {}
    for row in truth:
        hours, _ = injected.setdefault((row.user_name, row.day), (set(), row.kind))
        hours.add(row.hour)
    assert len(injected) == 3
    for key, (hours, kind) in injected.items():
        assert key in incidents, (key, incidents)
        found_hours, found_kind, detectors = incidents[key]
        assert hours <= set(found_hours), (key, hours, incidents[key])
        assert found_kind == KINDS[kind], (key, kind, incidents[key])
        if kind == "port_scan":
            assert "ports_one_host" in detectors, incidents[key]


def test_the_scans_content_features_are_its_flows(mixed):
    project, truth = mixed
    (scan,) = [row for row in truth if row.kind == "port_scan"]
    window = query(f"select min(activity_date), max(activity_date) from {project.relation('int_pca_days')}")[0]
    flows = query(
        f"select activity_date::text, hour_of_day, host(dst_ip), dst_port, bytes from {project.relation('stg_flows')} "
        f"where user_name = %s and activity_date between %s and %s",
        (scan.user_name, *window),
    )
    host_days: dict[str, set[str]] = {}
    for day, _, host, _, _ in flows:
        host_days.setdefault(host, set()).add(day)
    cell = [(host, port, size) for day, hour, host, port, size in flows if (day, hour) == (scan.day, scan.hour)]
    new = {host for host, _, _ in cell if host_days[host] == {scan.day}}
    ports_of = {host: {p for h, p, _ in cell if h == host} for host, _, _ in cell}
    new_on = {port: {h for h, p, _ in cell if p == port and h in new} for _, port, _ in cell if port not in (80, 443)}
    expected = (
        int(np.sum([size > 51200 and host in new for host, _, size in cell])),
        max(len(ports) for ports in ports_of.values()) - 1,
        max((len(hosts) for hosts in new_on.values()), default=0),
    )
    found = query(
        f"select big_flows_new_host, ports_one_host, new_hosts_one_port "
        f"from {project.relation('int_cell_content_features')} as features "
        f"join {project.relation('int_pca_users')} as users using (user_index) "
        f"join {project.relation('int_pca_days')} as days using (day_index) "
        f"where users.user_name = %s and days.activity_date = %s and features.hour_of_day = %s",
        (scan.user_name, scan.day, scan.hour),
    )
    assert found == [expected], (found, expected)
    assert expected[1] >= 3  # a scan: several ports of one host


def test_every_cells_content_features_are_recomputed_from_the_staged_flows(mixed):
    """All three features of every (hour, day, user) cell with flows, against a plain Python
    count over stg_flows of the window."""
    project, _ = mixed
    flows = query(
        f"select days.day_index, flows.hour_of_day, users.user_index, host(flows.dst_ip), flows.dst_port, flows.bytes "
        f"from {project.relation('stg_flows')} as flows "
        f"join {project.relation('int_pca_days')} as days using (activity_date) "
        f"join {project.relation('int_pca_users')} as users using (user_name)"
    )
    host_days: dict[tuple[int, str], set[int]] = {}
    for day, _, user, host, _, _ in flows:
        host_days.setdefault((user, host), set()).add(day)
    big: dict[tuple, int] = {}
    ports: dict[tuple, dict[str, set[int]]] = {}
    new_hosts: dict[tuple, dict[int, set[str]]] = {}
    for day, hour, user, host, port, size in flows:
        cell = (hour, day, user)
        is_new = len(host_days[(user, host)]) == 1
        big[cell] = big.get(cell, 0) + int(is_new and size > 51200)
        ports.setdefault(cell, {}).setdefault(host, set()).add(port)
        if is_new and port not in (80, 443):
            new_hosts.setdefault(cell, {}).setdefault(port, set()).add(host)
    expected = {
        cell: (big[cell], max(len(p) for p in ports[cell].values()) - 1,
               max((len(h) for h in new_hosts.get(cell, {}).values()), default=0))
        for cell in big
    }
    found = {
        (hour, day, user): (b, p, n)
        for hour, day, user, b, p, n in query(
            f"select hour_of_day, day_index, user_index, big_flows_new_host, ports_one_host, new_hosts_one_port "
            f"from {project.relation('int_cell_content_features')}"
        )
    }
    assert len(found) == len(expected) > 1000
    assert found == expected
    assert any(p >= 3 for _, p, _ in found.values()) and any(b > 0 for b, _, _ in found.values())


def test_content_tail_probabilities_are_the_exact_negative_binomial_tails(mixed):
    project, _ = mixed
    scored = query(
        f"select feature_value, expected_value, dispersion, tail_probability "
        f"from {project.relation('int_cell_content_scores')} where tail_probability < 1 "
        f"order by tail_probability, feature, hour_of_day, day_index, user_index"
    )
    assert len(scored) > 20
    for value, mean, dispersion, p in scored[:5] + scored[5::max(1, len(scored) // 30)]:
        expected = _nb_upper_tail(int(value), mean, dispersion)
        if expected > 1e-9:
            assert p == pytest.approx(expected, rel=1e-7), (value, mean, dispersion)
        else:
            assert expected * (1 - 1e-9) <= p <= expected * 50, (value, mean, dispersion, p, expected)
