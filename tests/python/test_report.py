"""The anomaly report of a really built project: self-contained HTML, plots that render in
headless Chromium and are not blank, and the numbers of the database."""

from __future__ import annotations

import re

import pytest

from conftest import query
from headless_browser import ARTIFACTS, colour_stats, dump_dom, screenshot
from traffic_anomalies import report

TOP = report.TOP_USERS_PER_HOUR


@pytest.fixture(scope="module")
def built(sample_built, tmp_path_factory):
    """The report of the project built from the sample lake (conftest's sample_built, shared
    with the docs site's tests)."""
    project = sample_built
    run_date = query(f"select max(activity_date)::text from {project.relation('dim_days')}")[0][0]
    out = tmp_path_factory.mktemp("report")
    path = report.build_report(run_date, schema=project.schema, output_root=out)
    return project, run_date, path


def hour_cards(dom: str) -> dict[int, str]:
    parts = re.split(r'<div class="card hour-card" id="hour-(\d\d)">', dom)
    return {int(parts[i]): parts[i + 1] for i in range(1, len(parts), 2)}


def test_report_is_written_where_expected_and_self_contained(built):
    _, run_date, path = built
    assert path.name == "index.html" and path.parent.name == run_date and path.parent.parent.name == "report"
    html = path.read_text(encoding="utf-8")
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html), "the report must not load anything"
    assert "<style>" in html and html.count("<svg") >= 48


def test_report_numbers_match_the_database(built):
    project, _, path = built
    html = path.read_text(encoding="utf-8")
    cards = hour_cards(html)
    assert sorted(cards) == list(range(24))
    components = dict(query(f"select hour_of_day, count(*) from {project.relation('fct_pca_components')} group by 1"))
    days = dict(query(f"select hour_of_day, count(*) from {project.relation('fct_day_anomalies')} group by 1"))
    anomalous = dict(query(
        f"select hour_of_day, count(*) filter (where is_anomalous) from {project.relation('fct_day_anomalies')} group by 1"))
    for hour, card in cards.items():
        scree, _, spe = card.partition('<svg class="plot spe"')
        assert len(re.findall(r'<rect class="bar"', scree)) == components.get(hour, 0), hour
        assert len(re.findall(r'<rect class="bar', spe)) == days.get(hour, 0), hour
        assert len(re.findall(r'<rect class="bar anomalous"', spe)) == anomalous.get(hour, 0), hour
    # the outlier table lists exactly the top users of each hour and method
    expected = query(
        f"select hour_of_day, method, user_name from {project.relation('fct_user_outliers')} where rank_in_hour <= %s",
        (TOP,),
    )
    assert expected, "the sample lake should give outliers"
    for hour, method, user in expected:
        assert f"{user} " in html
    chips = len(re.findall(r'<span class="chip"', html))
    assert chips == len(expected)
    # heatmaps: one per flagged user, each 24 × window cells, counts as in int_hourly_counts
    window = query(f"select count(*) from {project.relation('dim_days')}")[0][0]
    heatmaps = re.findall(r'<div class="card user-card"><h3>([^<]+)</h3>(.*?)</svg>', html, flags=re.S)
    assert heatmaps, "no flagged user"
    for user, svg in heatmaps:
        assert len(re.findall(r'<rect class="cell"', svg)) == 24 * window
        total = query(
            f"select coalesce(sum(c.flow_count), 0) from {project.relation('int_hourly_counts')} c"
            f" join {project.relation('dim_days')} d using (activity_date) where c.user_name = %s",
            (user,),
        )[0][0]
        shown = sum(int(n) for n in re.findall(r"— (\d+) flows</title>", svg))
        assert shown == total, user


def test_report_renders_in_chromium_with_plots_that_are_not_blank(built):
    _, run_date, path = built
    url = path.resolve().as_uri()
    dom = dump_dom(url, budget_ms=3000)
    svgs = re.findall(r"<svg\b[^>]*class=\"plot (\w+)\"(.*?)</svg>", dom, flags=re.S)
    kinds = [kind for kind, _ in svgs]
    assert kinds.count("scree") == 24 and kinds.count("spe") == 24 and kinds.count("heatmap") >= 1
    for kind, body in svgs:
        shapes = len(re.findall(r"<(rect|circle|polyline|line|path)\b", body))
        assert shapes >= 6, f"a {kind} plot is nearly empty ({shapes} shapes)"
    shot = screenshot(url, ARTIFACTS / f"report-{run_date}.png", window="1400,2600", budget_ms=3000)
    colours, inked = colour_stats(shot)
    assert colours >= 200, f"the screenshot has only {colours} colours"
    assert inked >= 0.1, f"the screenshot is {inked:.0%} ink: mostly blank"


def test_report_refuses_a_schema_without_marts(database, tmp_path):
    with pytest.raises(report.ReportError, match="lacks"):
        report.build_report("2017-01-21", schema="no_such_schema_for_report", output_root=tmp_path)


def test_cli_registers_report_command():
    import argparse

    parser = argparse.ArgumentParser()
    report.add_parser(parser.add_subparsers(dest="command"))
    assert parser.parse_args(["report", "--date", "2017-01-21"]).date == "2017-01-21"
    with pytest.raises(SystemExit):
        parser.parse_args(["report", "--date", "yesterday"])


def test_report_lists_the_strongest_residual_spikes_and_marks_them(built):
    project, _, path = built
    html = path.read_text(encoding="utf-8")
    total = query(f"select count(*) from {project.relation('fct_user_spikes')}")[0][0]
    expected = query(
        f"select activity_date::text, hour_of_day, user_name, flows from {project.relation('fct_user_spikes')}"
        " order by spike_score desc, hour_of_day, activity_date, user_name limit %s",
        (report.MAX_SPIKES,),
    )
    assert expected, "the sample lake should give residual spikes"
    section = html.partition('<section id="spikes">')[2].partition("</section>")[0]
    assert f"{total} (day, hour) cells exceed" in section
    rows = re.findall(r'<tr class="spike"><td>([^<]+)</td><td>(\d\d):00</td><td>([^<]+)</td><td>(\d+)</td>', section)
    assert [(d, int(h), u, int(f)) for d, h, u, f in rows] == [(d, h, u, f) for d, h, u, f in expected]
    # each flagged user's heatmap marks exactly that user's listed spikes
    heatmaps = dict(re.findall(r'<div class="card user-card"><h3>([^<]+)</h3>(.*?)</svg>', html, flags=re.S))
    for user, svg in heatmaps.items():
        marked = set(re.findall(r"<title>residual spike (\S+), hour (\d\d)</title>", svg))
        assert marked == {(d, f"{h:02d}") for d, h, u, _ in expected if u == user}, user


def test_report_without_the_spike_mart_says_so():
    import datetime as dt

    day = dt.date(2017, 1, 2)
    data = report.ReportData("old_schema", [day], 1, {}, {}, {})
    html = report.render_html(data, "2017-01-02")
    assert "old_schema has no fct_user_spikes" in html and "residual spikes" not in html.partition("<main>")[2][:400]
    data.spikes, data.spike_count = [(8, day, "alice", 40, 3.5, 9.25)], 1
    html = report.render_html(data, "2017-01-02")
    assert '<tr class="spike"><td>2017-01-02</td><td>08:00</td><td>alice</td><td>40</td><td>3.5</td><td>9.25</td></tr>' in html
