"""The anomaly report of a really built project (the sample lake): what it lists first, its
evidence and data-quality numbers against independent computations, a self-contained page
without broken links, and plots with titled axes and readable ticks in headless Chromium."""

from __future__ import annotations

import re
import statistics
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import pytest

from conftest import query
from headless_browser import ARTIFACTS, colour_stats, dump_dom, screenshot
from traffic_anomalies import docs, report

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def built(sample_built, sample_lake):
    """The report written into the project's target/, beside the docs site generated there
    (the report links to the docs pages, relative)."""
    project = sample_built
    run_date = query(f"select max(activity_date)::text from {project.relation('dim_days')}")[0][0]
    lake_root = str(Path(sample_lake.out_dir).resolve())
    docs.generate_docs(project.target_path, dbt_vars={"lake_root": lake_root}, env=project.env())
    path = report.build_report(run_date, schema=project.schema, output_root=project.target_path)
    return project, run_date, path


def spike_rows(html: str) -> list[tuple[str, str, int, int]]:
    """(user, day, hour, flows) of the spike table, in page order."""
    section = html.partition('<section id="spikes">')[2].partition("</section>")[0]
    rows = re.findall(r'<tr class="spike[^"]*">(.*?)</tr>', section, flags=re.S)
    out = []
    for row in rows:
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)]
        out.append((cells[2], cells[3], int(cells[4][:2]), int(cells[5].replace(",", ""))))
    return out


def test_first_row_is_the_strongest_injected_spike(built, sample_lake):
    project, _, path = built
    rows = spike_rows(path.read_text(encoding="utf-8"))
    injected = {(g.user_name, g.day, g.hour) for g in sample_lake.ground_truth}
    scores = query(f"select user_name, activity_date::text, hour_of_day, spike_score from {project.relation('fct_user_spikes')}")
    strongest_injected = max((s for s in scores if tuple(s[:3]) in injected), key=lambda s: s[3])
    assert rows[0][:3] == tuple(strongest_injected[:3])
    # one kept night: every spike is new, so the page's order is the score's, all of them shown
    expected = sorted(scores, key=lambda s: (-s[3], s[2], s[1], s[0]))[:report.MAX_SPIKES]
    assert [r[:3] for r in rows] == [tuple(s[:3]) for s in expected]
    spikes = path.read_text(encoding="utf-8").partition('<section id="spikes">')[2].partition("</section>")[0]
    assert spikes.count('<span class="tag">new</span>') == len(rows)


def incident_cards(dom: str) -> list[dict[str, str]]:
    """The incident cards in page order: id, status tag, hours, detectors and flows shown."""
    cards = []
    for incident, body in re.findall(r'<div class="card incident[^"]*" id="[^"]+" data-incident="([^"]+)">(.*?)</svg>',
                                     dom, flags=re.S):
        text = lambda pattern: re.sub(r"<[^>]+>", "", re.search(pattern, body, flags=re.S).group(1)).strip()
        cards.append({"incident": incident, "tag": text(r'<span class="tag[^"]*">(.*?)</span>'),
                      "hours": text(r'<span class="hours">(.*?)</span>'),
                      "detectors": text(r'<td class="detectors">(.*?)</td>'),
                      "flows": text(r"<th>flows in those hours</th><td[^>]*>(.*?)<small>")})
    return cards


def injected_strength(sample_lake) -> dict[str, float]:
    """incident_id -> the generator's strength of the injected incident: its magnitude (sigmas
    above the user's usual in each raised hour; ground_truth.csv)."""
    strength: dict[str, float] = {}
    for g in sample_lake.ground_truth:
        key = f"{g.day} {g.user_name}"
        strength[key] = max(strength.get(key, 0.0), float(g.magnitude))
    return strength


def test_page_leads_with_tonights_incidents_in_their_sql_order_in_chromium(built, sample_lake):
    project, run_date, path = built
    dom = dump_dom(path.resolve().as_uri(), budget_ms=3000)
    sections = re.findall(r'<section id="([^"]+)"', dom)
    assert sections == ["incidents", "quality", "pca", "history", "spikes"]
    cards = incident_cards(dom)
    # one night: every incident is new; the strongest injected one is among them
    strength = injected_strength(sample_lake)
    assert cards and all(c["tag"] == "new" for c in cards)
    assert max(strength, key=strength.get) in {c["incident"] for c in cards}
    # the page's order: new first, then still open, by score; as many as the report shows
    rows = query(f"select incident_id, is_new, score, rank_in_night, hours, detectors from {project.relation('fct_incidents')}")
    expected = sorted(rows, key=lambda r: (not r[1], -r[2], r[3]))[:report.MAX_INCIDENTS]
    assert [c["incident"] for c in cards] == [r[0] for r in expected]
    for card, (incident, _, _, _, hours, detectors) in zip(cards, expected):
        assert card["detectors"] == ", ".join(detectors)
        assert card["hours"].split(" ", 1)[1] == ", ".join(f"{h:02d}" for h in hours) + " UTC"
        day, user = incident.split(" ", 1)
        (flows,), = query(f"select count(*) from {project.relation('stg_flows')} where user_name = %s"
                          " and activity_date = %s and hour_of_day = any(%s)", (user, day, list(hours)))
        assert int(card["flows"].replace(",", "")) == flows, incident
    shot = screenshot(path.resolve().as_uri(), ARTIFACTS / f"report-{run_date}-top.png", window="1400,1600")
    assert shot.stat().st_size > 10_000


def test_every_injected_incident_ranks_above_every_other_and_leads_the_page_in_chromium(built, sample_lake):
    """Incidents rank by their night surprise (macro night_surprise: −ln of the normal findings
    per night their detector makes at least as surprising), one scale for every detector. On the
    sample lake every injected incident that was found ranks above every incident that was not
    injected, and the page leads with one of them."""
    project, _, path = built
    injected = set(injected_strength(sample_lake))
    ranked = [row[0] for row in query(
        f"select incident_id from {project.relation('fct_incidents')} order by rank_in_night")]
    found = [i for i, incident in enumerate(ranked) if incident in injected]
    others = [i for i, incident in enumerate(ranked) if incident not in injected]
    assert len(found) >= 2, (ranked, injected)
    assert not others or max(found) < min(others), (ranked, injected)
    cards = incident_cards(dump_dom(path.resolve().as_uri(), budget_ms=3000))
    assert cards[0]["incident"] == ranked[0] and cards[0]["incident"] in injected


def test_evidence_matches_the_flows_and_the_users_usual(built):
    project, _, path = built
    html = path.read_text(encoding="utf-8")
    user, day, hour, flows = spike_rows(html)[0]
    count, destinations, volume = query(
        f"select count(*), count(distinct dst_ip), sum(bytes) from {project.relation('stg_flows')}"
        " where user_name = %s and activity_date = %s and hour_of_day = %s", (user, day, hour))[0]
    assert flows == count
    per_day = dict(query(
        f"select d.activity_date, coalesce(c.flow_count, 0) from {project.relation('dim_days')} d"
        f" left join {project.relation('int_hourly_counts')} c on c.activity_date = d.activity_date"
        " and c.user_name = %s and c.hour_of_day = %s", (user, hour)))
    usual = statistics.median(per_day.values())
    first = re.search(r'<tr class="spike[^"]*">(.*?)</tr>', html, flags=re.S).group(1)
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", first, flags=re.S)]
    assert float(cells[6]) == pytest.approx(usual)
    assert int(cells[9]) == destinations and int(cells[11].replace(",", "")) == volume


def test_data_quality_counts_the_lake(built, sample_lake):
    _, _, path = built
    html = path.read_text(encoding="utf-8")
    section = html.partition('<section id="quality">')[2].partition("</section>")[0]
    shown = {}
    for status, reason, count in re.findall(
            r'<tr class="(loaded|quarantined)"><td>\w+</td><td>([^<]*)</td><td class="n">(\d+)</td>', section):
        shown[reason or status] = int(count)
    assert shown.pop("loaded") == sample_lake.valid_lines
    # the generator's kinds are the reasons, but garbage bytes fail whichever check meets them first
    kinds = Counter(row.kind for row in sample_lake.malformed)
    garbage = kinds.pop("garbage_bytes", 0)
    assert {reason: shown[reason] for reason in kinds} == dict(kinds)
    assert sum(n for reason, n in shown.items() if reason not in kinds) == garbage


def test_page_is_self_contained_and_no_link_is_broken(built):
    project, run_date, path = built
    html = path.read_text(encoding="utf-8")
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html), "the report must not load anything"
    assert set(re.findall(r'xlink:href="(data:[^;,]+)', html)) <= {"data:image/png"}
    manifest = (project.target_path / "manifest.json").read_text()
    ids = set(re.findall(r'\bid="([^"]+)"', html))
    hrefs = re.findall(r'<a\b[^>]*\shref="([^"]+)"', html)  # links (images are inline data: URIs)
    assert len(hrefs) >= 10
    for href in hrefs:
        target, _, fragment = href.partition("#")
        if not target:
            assert fragment in ids, href
            continue
        file = (path.parent / unquote(target)).resolve()
        assert file.is_file(), href
        if fragment.startswith("!/model/"):
            assert f'"{fragment.removeprefix("!/model/")}"' in manifest, href
    index = (path.parent.parent / "index.html").read_text()
    assert f'href="{run_date}/index.html"' in index


def svg_texts(svg: str) -> tuple[ET.Element, list[str], list[str]]:
    """The svg element, its tick labels and all its texts."""
    root = ET.fromstring(svg)
    ticks, texts = [], []
    for group in root.iter(f"{SVG}g"):
        if re.fullmatch(r"[xy]tick_\d+", group.get("id", "")):
            ticks += ["".join(t.itertext()).strip() for t in group.iter(f"{SVG}text")]
    texts = ["".join(t.itertext()).strip() for t in root.iter(f"{SVG}text")]
    return root, [t for t in ticks if t], texts


def test_plots_have_titled_axes_and_readable_ticks_in_chromium(built):
    _, run_date, path = built
    url = path.resolve().as_uri()
    dom = dump_dom(url, budget_ms=3000)  # a file:// page, no server: it opens offline
    svgs = re.findall(r'<svg\b[^>]*class="plot".*?</svg>', dom, flags=re.S)
    labels = re.findall(r'<svg\b[^>]*class="plot"[^>]*aria-label="([^"]+)"', dom)
    assert len(svgs) == len(labels) >= 4
    titles = {"flows of": {"hour of day (UTC)", "day", "flows in the hour (log scale)"},
              "scree": {"component", "variance"}, "SPE": {"day", "SPE"},
              "incidents per night": {"night (run date)", "incidents"}}
    seen = set()
    for label, svg in zip(labels, svgs):
        root, ticks, texts = svg_texts(svg)
        kind = next(k for k in titles if k in label)
        seen.add(kind)
        assert titles[kind] <= set(texts), (label, titles[kind] - set(texts))
        assert ticks, label
        for tick in ticks:
            assert len(tick) <= 10 and "e+" not in tick and "e-" not in tick, (label, tick)
            if re.fullmatch(r"-?[\d,.]+%?", tick):  # rounded: at most 3 significant digits
                assert len(re.sub(r"\D", "", tick).strip("0")) <= 3, (label, tick)
        if kind == "flows of":
            assert run_date in ticks, f"{label}: the run date's row is not labelled"
        # nothing cut: every text is anchored inside the drawing
        width, height = (float(v) for v in root.get("viewBox").split()[2:])
        for text in root.iter(f"{SVG}text"):
            x, y = float(text.get("x", 0)), float(text.get("y", 0))
            assert 0 <= x <= width and 0 <= y <= height, (label, "".join(text.itertext()))
    assert seen == set(titles)
    assert dom.count('aria-label="scree plot of each hour"') == 1 and dom.count("00:00 UTC") >= 2
    shot = screenshot(url, ARTIFACTS / f"report-{run_date}.png", window="1400,2400", budget_ms=3000)
    colours, inked = colour_stats(shot)
    assert colours >= 200 and inked >= 0.1, (colours, inked)


def test_report_refuses_a_schema_without_its_models(database, tmp_path):
    with pytest.raises(report.ReportError, match="lacks rpt_spikes"):
        report.build_report("2017-01-21", schema="no_such_schema_for_report", output_root=tmp_path)


def test_report_refuses_a_night_that_was_not_built(built, tmp_path):
    project, _, _ = built
    with pytest.raises(report.ReportError, match="run date 2017-02-01 was never built"):
        report.build_report("2017-02-01", schema=project.schema, output_root=tmp_path)


def test_cli_registers_report_command():
    import argparse

    parser = argparse.ArgumentParser()
    report.add_parser(parser.add_subparsers(dest="command"))
    assert parser.parse_args(["report", "--date", "2017-01-21"]).date == "2017-01-21"
    with pytest.raises(SystemExit):
        parser.parse_args(["report", "--date", "yesterday"])
