"""Two nights through a real central scheduler (luigid), one backfill of two dates: the dates
run in order, Luigi's task history lands in the project's database, the report lists how long the
night's steps took as the run recorded them, and the second night's report marks what is new
tonight and what the first night already reported, with the previous night's page one working
link away (headless Chromium)."""

from __future__ import annotations

import csv
import datetime as dt
import os
import re
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

from conftest import query
from headless_browser import ARTIFACTS, dump_dom, screenshot
from test_nightly import LAKE_DAYS, LAKE_USERS, RUN_DATE, Pipeline
from traffic_anomalies import report, scheduler

FIRST, SECOND = RUN_DATE - dt.timedelta(days=1), RUN_DATE
# test_nightly's lake size and dates, with a seed whose lake injects a port scan on the second
# night's own day: a light user's spike there (as in test_nightly's lake) is a few flows that
# calibrated detectors rightly leave alone, and the report would have nothing new to show.
TWO_NIGHTS_SEED = 14
STEPS = ("StageLake", "LoadSeeds", "BuildStaging", "BuildPcaInput", "PcaHours", "BuildMarts")
FAMILIES = {*STEPS, "GenerateDocs", "BuildReport", "NightlyRun"}


@dataclass
class TwoNights:
    pipeline: Pipeline
    url: str
    ran: subprocess.CompletedProcess

    def page(self, day: dt.date) -> Path:
        return self.pipeline.target_root / "report" / day.isoformat() / "index.html"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def nights(database, generated_lake, tmp_path_factory) -> Iterator[TwoNights]:
    lake = generated_lake("two-nights", users=LAKE_USERS, days=LAKE_DAYS, end=RUN_DATE, seed=TWO_NIGHTS_SEED)
    with open(lake / "ground_truth.csv", newline="") as handle:
        truth = list(csv.DictReader(handle))
    # what the second night's report must show as new: an anomaly on its own day that the
    # detectors find whatever the user (a 20-sigma port scan); and anomalies of the first night
    assert any(r["day"] == SECOND.isoformat() and r["kind"] == "port_scan" for r in truth), truth
    assert any(r["day"] < SECOND.isoformat() and r["kind"] in ("port_scan", "off_hours") for r in truth), truth
    root = tmp_path_factory.mktemp("two_nights")
    pipeline = Pipeline(f"t_two_{uuid.uuid4().hex[:8]}", lake, root / "target")
    port = _free_port()
    env = {**pipeline.env(), "TA_LUIGI_DIR": str(root / "luigi")}
    cli = [sys.executable, "-m", "traffic_anomalies.cli"]
    up = subprocess.run([*cli, "scheduler", "up", "--port", str(port)], env=env, capture_output=True, text=True)
    assert up.returncode == 0, up.stderr
    try:
        ran = subprocess.run(
            [*cli, "backfill", "--start", FIRST.isoformat(), "--end", SECOND.isoformat(), "--lake", str(lake),
             "--scheduler-url", scheduler.scheduler_url(port), "--workers", "2"],
            env=env, cwd="/", capture_output=True, text=True, timeout=1800)
        assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
        yield TwoNights(pipeline, scheduler.scheduler_url(port), ran)
    finally:
        subprocess.run([*cli, "scheduler", "down"], env=env, capture_output=True, text=True)
        pipeline.drop()


def test_backfill_runs_each_date_in_order(nights):
    """Every date of the range, in order: two dates prove it (the first, the last) as well as more."""
    pipeline, ran = nights.pipeline, nights.ran
    # The schema's tables hold the last date's night: that date is complete, the first is not
    # (its window was rebuilt by the second), and both nights are in the marts' history.
    assert pipeline.complete(SECOND)
    assert not pipeline.complete(FIRST)
    assert sorted(r[0] for r in query(f'select run_date from "{pipeline.schema}".dim_runs')) == [FIRST, SECOND]
    runs = [line for line in ran.stdout.splitlines() if "== nightly run " in line]
    assert len(runs) == 2 and FIRST.isoformat() in runs[0] and SECOND.isoformat() in runs[1], runs


# --- the task history -------------------------------------------------------------------------


def test_central_scheduler_records_every_task_of_both_nights_in_the_database(nights):
    schema = nights.pipeline.schema
    tables = query("select table_schema, table_name from information_schema.tables "
                   "where table_name in ('tasks', 'task_events', 'task_parameters') order by 2")
    assert tables == [(scheduler.HISTORY_SCHEMA, name) for name in ("task_events", "task_parameters", "tasks")]
    rows = query(f"""
        select t.name, d.value, array_agg(e.event_name order by e.ts, e.id)
        from {scheduler.HISTORY_SCHEMA}.tasks t
        join {scheduler.HISTORY_SCHEMA}.task_parameters s on s.task_id = t.id and s.name = 'schema'
        join {scheduler.HISTORY_SCHEMA}.task_parameters d on d.task_id = t.id and d.name = 'date'
        join {scheduler.HISTORY_SCHEMA}.task_events e on e.task_id = t.id
        where s.value = %s
        group by t.id, t.name, d.value""", (schema,))
    recorded = {(name, day) for name, day, _ in rows}
    assert recorded == {(family, day.isoformat()) for family in FAMILIES for day in (FIRST, SECOND)}
    for name, day, events in rows:
        assert events[-1] == "DONE" and "RUNNING" in events, (name, day, events)
        assert events.index("RUNNING") < events.index("DONE"), (name, day, events)
    # luigid's own page of recent runs reads the same tables
    with urllib.request.urlopen(f"{nights.url}history", timeout=10) as resp:
        assert resp.status == 200 and b"BuildMarts" in resp.read()


def test_recorded_durations_agree_with_the_runs_own_records(nights):
    """Two independent clocks: luigid's RUNNING → DONE events and the step's own elapsed time."""
    schema = nights.pipeline.schema
    luigi_seconds = dict(query(f"""
        select t.name, extract(epoch from max(e.ts) filter (where e.event_name = 'DONE')
                                          - max(e.ts) filter (where e.event_name = 'RUNNING'))::float8
        from {scheduler.HISTORY_SCHEMA}.tasks t
        join {scheduler.HISTORY_SCHEMA}.task_parameters s on s.task_id = t.id and s.name = 'schema'
        join {scheduler.HISTORY_SCHEMA}.task_parameters d on d.task_id = t.id and d.name = 'date'
        join {scheduler.HISTORY_SCHEMA}.task_events e on e.task_id = t.id
        where s.value = %s and d.value = %s
        group by t.name""", (schema, SECOND.isoformat())))
    own = dict(query("select step, elapsed_s from ta_meta.step_state where target_schema = %s and run_date = %s",
                     (schema, SECOND)))
    for step in STEPS:
        # luigid's span also holds the completion check and the marker's write
        assert own[step] <= luigi_seconds[step] + 0.5, step
        assert luigi_seconds[step] - own[step] < max(5.0, 0.25 * own[step]), (step, luigi_seconds[step], own[step])


# --- the report of the second night ----------------------------------------------------------


def _cells(row: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)]


def step_rows(html: str) -> dict[str, list[str]]:
    section = html.partition('<h3 id="steps">')[2].partition("</table>")[0]
    rows = [_cells(r) for r in re.findall(r'<tr class="step">(.*?)</tr>', section, flags=re.S)]
    return {cells[0]: cells[1:] for cells in rows}


def test_report_shows_the_steps_durations_as_the_run_recorded_them(nights):
    shown = step_rows(nights.page(SECOND).read_text(encoding="utf-8"))
    recorded = query("select step, task_family, elapsed_s, finished_at from ta_meta.step_state "
                     "where target_schema = %s and run_date = %s", (nights.pipeline.schema, SECOND))
    by_step = {step: (family, elapsed, finished) for step, family, elapsed, finished in recorded}
    # every step upstream of the report had finished when the page was written
    assert set(STEPS) <= set(shown) and "BuildReport" not in shown
    for step in STEPS:
        _, elapsed, finished = by_step[step]
        tasks, started, done, wall, busy, run = shown[step]
        assert tasks == "1" and float(wall) == pytest.approx(elapsed, abs=0.051) and float(busy) == float(wall)
        assert done == finished.astimezone(dt.timezone.utc).strftime("%H:%M:%S")
        assert run == query("select run_id from ta_meta.step_state where target_schema = %s and step = %s",
                            (nights.pipeline.schema, step))[0][0]


def spike_rows(html: str) -> list[tuple[tuple[str, str, int], bool]]:
    """((user, day, hour), tagged new) of the spike table, in page order."""
    section = html.partition('<section id="spikes">')[2].partition("</section>")[0]
    out = []
    for classes, row in re.findall(r'<tr class="(spike[^"]*)">(.*?)</tr>', section, flags=re.S):
        cells = _cells(row)
        out.append(((cells[2], cells[3], int(cells[4][:2])), "new" in classes.split()))
        assert (cells[1] == "new") == ("new" in classes.split())
    return out


def test_second_night_marks_its_new_spikes_new_and_the_first_nights_as_reported(nights):
    schema = nights.pipeline.schema
    runs = dict(query(f'select run_date, run_id from "{schema}".dim_runs'))
    assert set(runs) == {FIRST, SECOND}

    def spikes(day):
        return {(u, d.isoformat(), h) for u, d, h in query(
            f'select user_name, activity_date, hour_of_day from "{schema}".fct_user_spikes_history where run_id = %s',
            (runs[day],))}

    first, second = spikes(FIRST), spikes(SECOND)
    first_page = spike_rows(nights.page(FIRST).read_text(encoding="utf-8"))
    second_page = spike_rows(nights.page(SECOND).read_text(encoding="utf-8"))
    # night one had no earlier night: everything was new
    assert first_page and all(new for _, new in first_page) and {c for c, _ in first_page} == first
    assert len(second) <= report.MAX_SPIKES and {c for c, _ in second_page} == second
    new = {cell for cell, tagged in second_page if tagged}
    assert new == second - first and {cell for cell, tagged in second_page if not tagged} == second & first
    assert new and second & first, "the lake injects anomalies on both nights: each kind must be there"
    # new tonight first
    flags = [tagged for _, tagged in second_page]
    assert flags == sorted(flags, reverse=True)
    # the lake's injected anomalies found on the first night are shown again, as already reported
    with open(nights.pipeline.lake / "ground_truth.csv", newline="") as handle:
        injected = {(r["user_name"], r["day"], int(r["hour"])) for r in csv.DictReader(handle)}
    assert injected & first and injected & first <= {cell for cell, tagged in second_page if not tagged}


def _links(html: str) -> list[str]:
    return re.findall(r'<a\b[^>]*\shref="([^"]+)"', html)


def test_previous_night_link_opens_and_no_link_is_broken_in_chromium(nights):
    second = nights.page(SECOND).resolve()
    dom = dump_dom(second.as_uri(), budget_ms=3000)
    previous = re.search(r'<a id="previous-night" href="([^"]+)"', dom)
    assert previous, "the second night links to the first"
    target = (second.parent / unquote(previous.group(1))).resolve()
    assert target == nights.page(FIRST).resolve()
    opened = dump_dom(target.as_uri(), budget_ms=3000)
    assert f"night of {FIRST.isoformat()}" in opened and 'id="previous-night"' not in opened
    for page, html in ((second, dom), (target, opened)):
        ids = set(re.findall(r'\bid="([^"]+)"', html))
        for href in _links(html):
            file, _, fragment = href.partition("#")
            if not file:
                assert fragment in ids, (page, href)
            else:
                assert (page.parent / unquote(file)).resolve().is_file(), (page, href)
    shot = screenshot(second.as_uri(), ARTIFACTS / "report-second-night.png", window="1400,2400")
    assert shot.stat().st_size > 10_000


def test_second_night_leads_with_its_new_incidents_then_the_still_open_ones(nights):
    from test_report import incident_cards

    schema = nights.pipeline.schema
    runs = dict(query(f'select run_date, run_id from "{schema}".dim_runs'))

    def incidents(day):
        return {r[0] for r in query(f'select incident_id from "{schema}".fct_incidents_history where run_id = %s',
                                    (runs[day],))}

    first, second = incidents(FIRST), incidents(SECOND)
    cards = incident_cards(nights.page(SECOND).read_text(encoding="utf-8"))
    assert {c["incident"] for c in cards} == second and len(second) <= report.MAX_INCIDENTS
    assert {c["incident"] for c in cards if c["tag"] == "new"} == second - first
    assert {c["incident"] for c in cards if c["tag"] == "still open"} == second & first
    assert second - first and second & first, "the lake injects incidents on both nights"
    tags = [c["tag"] for c in cards]
    assert tags == sorted(tags)  # "new" < "still open": new tonight first
    # the history panel counts both nights the same way
    html = nights.page(SECOND).read_text(encoding="utf-8")
    shown = {cells[0]: (int(cells[1]), int(cells[2])) for cells in
             (_cells(r) for r in re.findall(r'<tr class="night">(.*?)</tr>', html, flags=re.S))}
    assert shown == {FIRST.isoformat(): (len(first), len(first)), SECOND.isoformat(): (len(second), len(second - first))}
