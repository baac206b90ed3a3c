"""`traffic-anomalies report --date D`: the anomaly report as one static HTML file.

`build_report(date)` reads the marts of the schema (env TA_SCHEMA, default `traffic`) and
writes `target/report/<date>/index.html`: inline CSS and inline SVG only (no script, no
external asset), so the file can be mailed, archived or opened offline. It shows

* the top outlier users of every hour (fct_user_outliers),
* for each flagged user, a day × hour heatmap of their flows over the PCA window
  (int_hourly_counts) with the anomalous cells and the hours they are an outlier in marked,
* for every hour, the scree plot of the kept components (fct_pca_components) and each day's
  SPE against the hour's threshold (fct_day_anomalies),
* the strongest residual spikes: single (day, hour) cells far above the user's own pattern
  (fct_user_spikes), also marked on the heatmaps.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import math
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traffic_anomalies import PROJECT_DIR

DEFAULT_SCHEMA = "traffic"
TOP_USERS_PER_HOUR = 5
MAX_FLAGGED_USERS = 12
MAX_SPIKES = 30

# A colour-blind-safe palette (Okabe–Ito) and a sequential blue ramp for counts.
ANOMALY = "#d55e00"
OUTLIER = "#e69f00"
NORMAL = "#0072b2"
CUMULATIVE = "#009e73"
THRESHOLD = "#cc79a7"
SPIKE = "#000000"
GRID = "#d9d9d9"
TEXT = "#222222"
RAMP = ("#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b")


class ReportError(RuntimeError):
    """The report cannot be built (a missing mart, an empty window): the message says why."""


@dataclass
class ReportData:
    """Everything the report shows, as read from the database."""

    schema: str
    days: list[dt.date]
    user_count: int
    # (hour, method) -> [(rank_in_hour, user_name, component_rank, loading, outlier_score)]
    outliers: dict[tuple[int, str], list[tuple[int, str, int, float, float]]]
    # hour -> [(component_rank, proportion, cumulative_proportion, eigenvalue)]
    components: dict[int, list[tuple[int, float, float, float]]]
    # hour -> [(activity_date, spe, spe_threshold or None, is_anomalous, top user names)]
    day_errors: dict[int, list[tuple[dt.date, float, float | None, bool, list[str]]]]
    # flagged user -> {(activity_date, hour): flow_count}
    activity: dict[str, dict[tuple[dt.date, int], int]] = field(default_factory=dict)
    flagged_users: list[str] = field(default_factory=list)
    # strongest first: (hour, activity_date, user_name, flows, expected_flows, spike_score);
    # None when the schema has no fct_user_spikes (built before that detector existed)
    spikes: list[tuple[int, dt.date, str, int, float, float]] | None = None
    spike_count: int = 0

    @property
    def methods(self) -> list[str]:
        return sorted({method for _, method in self.outliers})

    def anomalous_cells(self, user: str) -> set[tuple[dt.date, int]]:
        """(day, hour) of the anomalous days whose SPE this user is among the top users of."""
        return {
            (day, hour)
            for hour, rows in self.day_errors.items()
            for day, _, _, anomalous, top in rows
            if anomalous and user in top
        }

    def outlier_hours(self, user: str) -> set[int]:
        return {hour for (hour, _), rows in self.outliers.items() for row in rows if row[1] == user}

    def spike_cells(self, user: str) -> set[tuple[dt.date, int]]:
        return {(day, hour) for hour, day, name, *_ in self.spikes or () if name == user}


# --- reading ------------------------------------------------------------------------------------


def report_schema(schema: str | None = None) -> str:
    from traffic_anomalies.validation import InvalidSetting, schema_name

    what = "--schema" if schema else "TA_SCHEMA"
    try:
        return schema_name(schema or os.environ.get("TA_SCHEMA") or DEFAULT_SCHEMA, what)
    except InvalidSetting as exc:
        raise ReportError(str(exc)) from None


def connect():
    import psycopg2

    from traffic_anomalies import localdb

    env = localdb.apply_connection_env()
    try:
        return psycopg2.connect("", connect_timeout=10)  # libpq reads the PG* variables
    except psycopg2.OperationalError as exc:
        raise ReportError(f"cannot connect to {localdb.describe(env)}: {str(exc).strip()}") from None


def _fetch(cur, schema: str, relation: str, text: str, params: tuple = ()) -> list[tuple]:
    """Rows of `text`, whose `{}` is the schema's relation (quoted as an identifier)."""
    from psycopg2 import sql

    cur.execute(sql.SQL(text).format(sql.Identifier(schema, relation)), params)
    return cur.fetchall()


REPORTED_MARTS = ("dim_days", "dim_users", "fct_pca_components", "fct_day_anomalies", "fct_user_outliers",
                  "fct_user_spikes")


def check_one_run(cur, schema: str, present: set[str]) -> None:
    """Every mart the report reads must show the same nightly run (run_id), or the page would
    mix two nights: refuse, naming the runs."""
    runs: dict[str, list[str]] = {}
    for mart in (m for m in REPORTED_MARTS if m in present):
        cur.execute("select 1 from information_schema.columns where table_schema = %s and table_name = %s "
                    "and column_name = 'run_id'", (schema, mart))
        if cur.fetchone() is None:
            raise ReportError(f"{schema}.{mart} has no run_id: built before nightly snapshots; rerun the nightly")
        for run_id, run_date in _fetch(cur, schema, mart, "select distinct run_id, run_date from {}"):
            runs.setdefault(f"{run_id} ({run_date})", []).append(mart)
    if len(runs) > 1:
        shown = "; ".join(f"{run}: {', '.join(marts)}" for run, marts in sorted(runs.items()))
        raise ReportError(f"the marts of schema {schema!r} mix nightly runs ({shown}): rerun the nightly")


def load_report_data(
    conn, schema: str, top_n: int = TOP_USERS_PER_HOUR, max_users: int = MAX_FLAGGED_USERS, max_spikes: int = MAX_SPIKES
) -> ReportData:
    with conn.cursor() as cur:
        cur.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = %s",
            (schema,),
        )
        present = {row[0] for row in cur.fetchall()}
        needed = ("dim_days", "dim_users", "int_hourly_counts", "fct_pca_components", "fct_day_anomalies", "fct_user_outliers")
        missing = [name for name in needed if name not in present]
        if missing:
            raise ReportError(f"schema {schema!r} lacks {', '.join(missing)}: build the marts first (traffic-anomalies nightly)")
        check_one_run(cur, schema, present)

        days = [row[0] for row in _fetch(cur, schema, "dim_days", "select activity_date from {} order by activity_date")]
        if not days:
            raise ReportError(f"{schema}.dim_days is empty: there is no PCA window to report on")
        user_count = _fetch(cur, schema, "dim_users", "select count(*) from {}")[0][0]

        outliers: dict[tuple[int, str], list] = defaultdict(list)
        for hour, method, rank, user, component, loading, score in _fetch(
            cur,
            schema,
            "fct_user_outliers",
            "select hour_of_day, method, rank_in_hour, user_name, component_rank, loading, outlier_score"
            " from {} where rank_in_hour <= %s order by hour_of_day, method, rank_in_hour, user_name",
            (top_n,),
        ):
            outliers[(int(hour), str(method))].append((int(rank), user, int(component), float(loading), float(score)))

        components: dict[int, list] = defaultdict(list)
        for hour, rank, proportion, cumulative, eigenvalue in _fetch(
            cur,
            schema,
            "fct_pca_components",
            "select hour_of_day, component_rank, proportion, cumulative_proportion, eigenvalue"
            " from {} order by hour_of_day, component_rank",
        ):
            components[int(hour)].append((int(rank), float(proportion), float(cumulative), float(eigenvalue)))

        day_errors: dict[int, list] = defaultdict(list)
        for hour, day, spe, threshold, anomalous, top_users in _fetch(
            cur,
            schema,
            "fct_day_anomalies",
            "select hour_of_day, activity_date, spe, spe_threshold, coalesce(is_anomalous, false), top_users"
            " from {} order by hour_of_day, activity_date",
        ):
            day_errors[int(hour)].append(
                (day, float(spe or 0.0), None if threshold is None else float(threshold), bool(anomalous), _top_user_names(top_users))
            )

        data = ReportData(schema, days, int(user_count), dict(outliers), dict(components), dict(day_errors))
        if "fct_user_spikes" in present:
            data.spike_count = _fetch(cur, schema, "fct_user_spikes", "select count(*) from {}")[0][0]
            data.spikes = [
                (int(hour), day, user, int(flows), float(expected), float(score))
                for hour, day, user, flows, expected, score in _fetch(
                    cur,
                    schema,
                    "fct_user_spikes",
                    "select hour_of_day, activity_date, user_name, flows, expected_flows, spike_score from {}"
                    " order by spike_score desc, hour_of_day, activity_date, user_name limit %s",
                    (max_spikes,),
                )
            ]
        data.flagged_users = flagged_users(data, max_users)
        if data.flagged_users:
            for user, day, hour, count in _fetch(
                cur,
                schema,
                "int_hourly_counts",
                "select user_name, activity_date, hour_of_day, flow_count from {}"
                " where user_name = any(%s) and activity_date between %s and %s",
                (data.flagged_users, days[0], days[-1]),
            ):
                data.activity.setdefault(user, {})[(day, int(hour))] = int(count)
        for user in data.flagged_users:
            data.activity.setdefault(user, {})
    return data


def _top_user_names(value: Any) -> list[str]:
    """fct_day_anomalies.top_users: a JSON list of {user_name, …} objects or of names."""
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [name.strip() for name in value.split(",") if name.strip()]
    names = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict):
            if item.get("user_name") is not None:
                names.append(str(item["user_name"]))
        elif item is not None:
            names.append(str(item))
    return names


def flagged_users(data: ReportData, max_users: int = MAX_FLAGGED_USERS) -> list[str]:
    """Users worth a heatmap: first the top users of anomalous days (by SPE share order), then
    the hours' top outliers by best score, then the users of the strongest spikes; at most
    max_users."""
    ranked: dict[str, tuple[int, float]] = {}
    for rows in data.day_errors.values():
        for _, _, _, anomalous, top in rows:
            if anomalous:
                for position, user in enumerate(top[:3]):
                    key = (0, float(position))
                    ranked[user] = min(ranked.get(user, key), key)
    for rows in data.outliers.values():
        for rank, user, _, _, score in rows:
            if rank <= 3:
                key = (1, -score)
                ranked[user] = min(ranked.get(user, key), key)
    for _, _, user, _, _, score in data.spikes or ():
        key = (2, -score)
        ranked[user] = min(ranked.get(user, key), key)
    return [user for user, _ in sorted(ranked.items(), key=lambda item: (item[1], item[0]))][:max_users]


# --- drawing ------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") if abs(value - round(value)) > 1e-9 else str(int(round(value)))


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.3g}"
    return f"{value:.3f}".rstrip("0").rstrip(".")


def ramp_colour(count: int, max_count: int) -> str:
    if count <= 0 or max_count <= 0:
        return RAMP[0]
    position = math.log1p(count) / math.log1p(max_count)
    return RAMP[1 + min(len(RAMP) - 2, int(position * (len(RAMP) - 1)))]


def heatmap_svg(user: str, data: ReportData) -> str:
    """Days (rows) × hours (columns) of one user's flows; anomalous cells outlined."""
    cells = data.activity.get(user, {})
    marks = data.anomalous_cells(user)
    outlier_hours = data.outlier_hours(user)
    cell_w, cell_h, left, top = 16, 11, 74, 30
    width = left + 24 * cell_w + 10
    height = top + len(data.days) * cell_h + 24
    max_count = max(cells.values(), default=0)
    parts = [
        f'<svg class="plot heatmap" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="activity of {_e(user)} per day and hour">'
    ]
    for hour in range(24):
        x = left + hour * cell_w
        if hour % 3 == 0:
            parts.append(f'<text x="{x + cell_w / 2}" y="{top - 14}" class="tick" text-anchor="middle">{hour:02d}</text>')
        if hour in outlier_hours:
            parts.append(
                f'<path class="outlier-hour" d="M{x + 3} {top - 10} L{x + cell_w - 3} {top - 10} L{x + cell_w / 2} {top - 3} Z" '
                f'fill="{OUTLIER}"><title>{_e(user)} is a top outlier of hour {hour:02d}</title></path>'
            )
    for row, day in enumerate(data.days):
        y = top + row * cell_h
        if row % 2 == 0 or len(data.days) <= 14:
            parts.append(f'<text x="{left - 4}" y="{y + cell_h - 2}" class="tick" text-anchor="end">{day.isoformat()}</text>')
        for hour in range(24):
            count = cells.get((day, hour), 0)
            x = left + hour * cell_w
            parts.append(
                f'<rect class="cell" x="{x}" y="{y}" width="{cell_w - 1}" height="{cell_h - 1}" '
                f'fill="{ramp_colour(count, max_count)}"><title>{_e(user)} {day.isoformat()} {hour:02d}:00 — {count} flows</title></rect>'
            )
    for day, hour in sorted(data.spike_cells(user)):
        if day in data.days:
            x = left + hour * cell_w + cell_w / 2
            y = top + data.days.index(day) * cell_h + cell_h / 2
            parts.append(
                f'<circle class="spike-mark" cx="{x - 0.5}" cy="{y - 0.5}" r="3" fill="{SPIKE}" stroke="white" stroke-width="1">'
                f"<title>residual spike {day.isoformat()}, hour {hour:02d}</title></circle>"
            )
    for day, hour in sorted(marks):
        if day in data.days:
            x = left + hour * cell_w
            y = top + data.days.index(day) * cell_h
            parts.append(
                f'<rect class="anomaly-mark" x="{x - 1}" y="{y - 1}" width="{cell_w + 1}" height="{cell_h + 1}" '
                f'fill="none" stroke="{ANOMALY}" stroke-width="2.5"><title>anomalous day {day.isoformat()}, hour {hour:02d}</title></rect>'
            )
    legend_y = height - 8
    parts.append(f'<text x="{left}" y="{legend_y}" class="tick">0</text>')
    for i, colour in enumerate(RAMP):
        parts.append(f'<rect x="{left + 12 + i * 14}" y="{legend_y - 9}" width="13" height="9" fill="{colour}"/>')
    parts.append(f'<text x="{left + 16 + len(RAMP) * 14}" y="{legend_y}" class="tick">{max_count} flows</text>')
    parts.append("</svg>")
    return "".join(parts)


def scree_svg(hour: int, comps: list[tuple[int, float, float, float]]) -> str:
    """Share of variance per kept component (bars) and cumulative share (line)."""
    width, height, left, right, top, bottom = 300, 170, 36, 10, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [
        f'<svg class="plot scree" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="scree plot of hour {hour:02d}">'
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        y = top + plot_h * (1 - tick)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{GRID}" stroke-width="1"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 3:.1f}" class="tick" text-anchor="end">{tick:g}</text>')
    if not comps:
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" class="empty" text-anchor="middle">no components</text>')
    else:
        slot = plot_w / len(comps)
        bar = max(2.0, slot * 0.7)
        points = []
        for i, (rank, proportion, cumulative, eigenvalue) in enumerate(comps):
            x = left + i * slot + (slot - bar) / 2
            h = max(0.5, plot_h * max(0.0, min(1.0, proportion)))
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{NORMAL}">'
                f"<title>component {rank}: {proportion:.1%} of the variance (eigenvalue {_fmt(eigenvalue)})</title></rect>"
            )
            cx, cy = x + bar / 2, top + plot_h * (1 - max(0.0, min(1.0, cumulative)))
            points.append((cx, cy, rank, cumulative))
            if len(comps) <= 12 or i % 2 == 0:
                parts.append(f'<text x="{cx:.1f}" y="{height - bottom + 12}" class="tick" text-anchor="middle">{rank}</text>')
        parts.append(
            f'<polyline class="cumulative" fill="none" stroke="{CUMULATIVE}" stroke-width="2" points="'
            + " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
            + '"/>'
        )
        for x, y, rank, cumulative in points:
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{CUMULATIVE}"><title>components 1–{rank}: {cumulative:.1%}</title></circle>'
            )
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 2}" class="axis" text-anchor="middle">component</text>')
    parts.append("</svg>")
    return "".join(parts)


def spe_svg(hour: int, rows: list[tuple[dt.date, float, float | None, bool, list[str]]]) -> str:
    """Each day's SPE (bars; anomalous days in orange) against the hour's limit (dashed)."""
    width, height, left, right, top, bottom = 420, 170, 46, 10, 12, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    threshold = next((t for _, _, t, _, _ in rows if t is not None), None)
    top_value = max([spe for _, spe, _, _, _ in rows] + ([threshold] if threshold else []) + [1e-12]) * 1.1
    parts = [
        f'<svg class="plot spe" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="SPE per day of hour {hour:02d}">'
    ]
    for i in range(5):
        value = top_value * i / 4
        y = top + plot_h * (1 - i / 4)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{GRID}" stroke-width="1"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 3:.1f}" class="tick" text-anchor="end">{_fmt(value)}</text>')
    if not rows:
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" class="empty" text-anchor="middle">no days</text>')
    else:
        slot = plot_w / len(rows)
        bar = max(1.5, slot * 0.75)
        for i, (day, spe, limit, anomalous, top_users) in enumerate(rows):
            h = max(0.5, plot_h * spe / top_value)
            x = left + i * slot + (slot - bar) / 2
            who = f" — top users: {', '.join(top_users[:3])}" if top_users else ""
            parts.append(
                f'<rect class="bar{" anomalous" if anomalous else ""}" x="{x:.1f}" y="{top + plot_h - h:.1f}" '
                f'width="{bar:.1f}" height="{h:.1f}" fill="{ANOMALY if anomalous else NORMAL}">'
                f"<title>{day.isoformat()}: SPE {_fmt(spe)}{' (anomalous)' if anomalous else ''}{_e(who)}</title></rect>"
            )
            if i % max(1, len(rows) // 7) == 0:
                parts.append(
                    f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 12}" class="tick" text-anchor="middle">{day.strftime("%m-%d")}</text>'
                )
        if threshold is not None:
            y = top + plot_h * (1 - threshold / top_value)
            parts.append(
                f'<line class="threshold" x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="{THRESHOLD}" '
                f'stroke-width="2" stroke-dasharray="6 3"><title>SPE limit (Q) {_fmt(threshold)}</title></line>'
            )
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 4}" class="axis" text-anchor="middle">day (SPE; dashed: limit Q)</text>')
    parts.append("</svg>")
    return "".join(parts)


# --- the page -----------------------------------------------------------------------------------

CSS = f"""
body {{ font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: {TEXT}; margin: 0; background: #fafafa; }}
header {{ background: #08306b; color: white; padding: 18px 28px; }}
header h1 {{ margin: 0 0 4px; font-size: 22px; }}
main {{ padding: 8px 28px 40px; }}
h2 {{ border-bottom: 2px solid #08306b; padding-bottom: 4px; margin-top: 32px; }}
.summary {{ display: flex; gap: 14px; flex-wrap: wrap; margin: 16px 0; }}
.stat {{ background: white; border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 120px; }}
.stat b {{ display: block; font-size: 22px; color: #08519c; }}
.warning {{ background: #fff3e0; border-left: 4px solid {ANOMALY}; padding: 8px 12px; }}
table {{ border-collapse: collapse; background: white; }}
th, td {{ border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }}
th {{ background: #eef3f9; }}
.chip {{ display: inline-block; margin: 1px 4px 1px 0; padding: 0 6px; border-radius: 10px; background: #fdf0d5; border: 1px solid {OUTLIER}; font-size: 12px; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 16px; }}
.card {{ background: white; border: 1px solid #ddd; border-radius: 6px; padding: 10px 12px; }}
.card h3 {{ margin: 0 0 6px; font-size: 15px; }}
.legend span {{ display: inline-block; margin-right: 14px; }}
.swatch {{ display: inline-block; width: 12px; height: 12px; vertical-align: -2px; margin-right: 4px; }}
svg .tick {{ font-size: 9px; fill: #555; }}
svg .axis {{ font-size: 10px; fill: #333; }}
svg .empty {{ font-size: 12px; fill: #999; }}
footer {{ color: #777; font-size: 12px; padding: 0 28px 24px; }}
"""


def spikes_section(data: ReportData) -> str:
    """The strongest residual spikes, strongest first (fct_user_spikes)."""
    out = ['<section id="spikes"><h2>Residual spikes: one hour far above the user\'s own pattern</h2>']
    if data.spikes is None:
        out.append(f"<p>{_e(data.schema)} has no fct_user_spikes: rebuild the marts to see this detector.</p></section>")
        return "".join(out)
    shown = f"the {len(data.spikes)} strongest of {data.spike_count}" if data.spike_count > len(data.spikes) else "all"
    out.append(
        f"<p>{data.spike_count} (day, hour) cells exceed their Bonferroni threshold ({shown} below; fct_user_spikes): "
        "flows against what the user's other hours that day and other days in that hour predict.</p>"
    )
    if data.spikes:
        out.append('<table class="spikes"><tr><th>day</th><th>hour (UTC)</th><th>user</th><th>flows</th><th>expected</th><th>score</th></tr>')
        for hour, day, user, flows, expected, score in data.spikes:
            out.append(
                f'<tr class="spike"><td>{day.isoformat()}</td><td>{hour:02d}:00</td><td>{_e(user)}</td>'
                f"<td>{flows}</td><td>{_fmt(expected)}</td><td>{score:.2f}</td></tr>"
            )
        out.append("</table>")
    out.append("</section>")
    return "".join(out)


def render_html(data: ReportData, date: str, generated_at: dt.datetime | None = None) -> str:
    generated_at = generated_at or dt.datetime.now(dt.timezone.utc)
    anomalous = sum(1 for rows in data.day_errors.values() for row in rows if row[3])
    window = f"{data.days[0].isoformat()} … {data.days[-1].isoformat()}"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>traffic_anomalies report {_e(date)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<header><h1>Traffic anomalies — {_e(date)}</h1>"
        f"<div>schema <code>{_e(data.schema)}</code> · PCA window {window} · one PCA per hour of day</div></header>",
        "<main>",
    ]
    if data.days[-1].isoformat() != date:
        out.append(
            f'<p class="warning">The PCA window in the database ends on {data.days[-1].isoformat()}, not on {_e(date)}: '
            "the marts were built for another run date.</p>"
        )
    out.append('<div class="summary">')
    for label, value in (
        ("days in the window", len(data.days)),
        ("users", data.user_count),
        ("anomalous (hour, day) pairs", anomalous),
        ("flagged users", len(data.flagged_users)),
        *((("residual spikes", data.spike_count),) if data.spikes is not None else ()),
    ):
        out.append(f'<div class="stat"><b>{value}</b>{_e(label)}</div>')
    out.append("</div>")

    # 1. top outliers per hour
    methods = data.methods
    out.append('<section id="outliers"><h2>Top outlier users per hour</h2>')
    out.append(
        "<p>Users whose absolute loading on one of the hour's principal components is largest "
        "(fct_user_outliers; score = the outlier score, component in brackets).</p>"
    )
    out.append("<table><tr><th>hour (UTC)</th>" + "".join(f"<th>{_e(m)}</th>" for m in methods) + "<th>anomalous days</th></tr>")
    for hour in range(24):
        cells = []
        for method in methods:
            rows = data.outliers.get((hour, method), [])
            cells.append(
                "<td>"
                + "".join(
                    f'<span class="chip" title="component {component}, loading {loading:+.3f}">{_e(user)} {score:.2f} [{component}]</span>'
                    for _, user, component, loading, score in rows
                )
                + "</td>"
            )
        flagged_days = [row[0].isoformat() for row in data.day_errors.get(hour, []) if row[3]]
        out.append(f"<tr><td>{hour:02d}:00</td>{''.join(cells)}<td>{_e(', '.join(flagged_days)) or '—'}</td></tr>")
    out.append("</table></section>")

    # 2. heatmaps
    out.append('<section id="users"><h2>Flagged users: activity per day and hour</h2>')
    out.append(
        f'<p class="legend"><span><span class="swatch" style="background:{RAMP[6]}"></span>flows in the hour (log scale)</span>'
        f'<span><span class="swatch" style="border:2px solid {ANOMALY}"></span>anomalous day where the user is among the top SPE contributors</span>'
        f'<span><span class="swatch" style="background:{OUTLIER}"></span>hour in which the user is a top outlier</span>'
        f'<span><span class="swatch" style="background:{SPIKE};border-radius:50%"></span>residual spike</span></p>'
    )
    if not data.flagged_users:
        out.append("<p>No user is flagged.</p>")
    out.append('<div class="grid">')
    for user in data.flagged_users:
        out.append(f'<div class="card user-card"><h3>{_e(user)}</h3>{heatmap_svg(user, data)}</div>')
    out.append("</div></section>")

    # 3. residual spikes
    out.append(spikes_section(data))

    # 4. per hour
    out.append('<section id="hours"><h2>Per hour: kept components and SPE of each day</h2>')
    out.append(
        f'<p class="legend"><span><span class="swatch" style="background:{NORMAL}"></span>share of variance / SPE of a normal day</span>'
        f'<span><span class="swatch" style="background:{CUMULATIVE}"></span>cumulative share</span>'
        f'<span><span class="swatch" style="background:{ANOMALY}"></span>anomalous day</span>'
        f'<span><span class="swatch" style="background:{THRESHOLD}"></span>SPE limit Q</span></p>'
    )
    out.append('<div class="grid">')
    for hour in range(24):
        out.append(
            f'<div class="card hour-card" id="hour-{hour:02d}"><h3>{hour:02d}:00–{hour:02d}:59 UTC</h3>'
            f"{scree_svg(hour, data.components.get(hour, []))}{spe_svg(hour, data.day_errors.get(hour, []))}</div>"
        )
    out.append("</div></section></main>")
    out.append(
        f"<footer>Generated {generated_at.strftime('%Y-%m-%d %H:%M UTC')} by traffic-anomalies report from "
        f"{_e(data.schema)}.fct_user_outliers, fct_day_anomalies, fct_pca_components, fct_user_spikes and int_hourly_counts.</footer>"
    )
    out.append("</body></html>")
    return "\n".join(out)


def _as_date(value: str | dt.date) -> str:
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise ReportError(f"not a date (YYYY-MM-DD): {value!r}") from None


def build_report(date: str | dt.date, schema: str | None = None, output_root: Path | None = None) -> Path:
    """Write target/report/<date>/index.html (under output_root, default the project's target/)."""
    day = _as_date(date)
    schema = report_schema(schema)
    conn = connect()
    try:
        data = load_report_data(conn, schema)
    finally:
        conn.close()
    if data.days[-1].isoformat() != day:  # no page that looks like a night that never ran
        raise ReportError(
            f"run date {day} was never built in schema {schema}: its marts are of run date {data.days[-1]} "
            f"(PCA window {data.days[0]} … {data.days[-1]})")
    out_dir = Path(output_root or PROJECT_DIR / "target") / "report" / day
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render_html(data, day), encoding="utf-8")
    tmp.replace(path)
    return path


def _date_arg(value: str) -> str:
    try:
        return _as_date(value)
    except ReportError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _schema_arg(value: str) -> str:
    try:
        return report_schema(value)
    except ReportError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _command(args: argparse.Namespace) -> int:
    try:
        path = build_report(args.date, schema=args.schema)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "report",
        help="write the anomaly report (static HTML) for a run date",
        description="Write target/report/<date>/index.html from the marts of the schema (env TA_SCHEMA).",
    )
    parser.add_argument("--date", required=True, type=_date_arg, help="the run date, YYYY-MM-DD")
    parser.add_argument("--schema", default=None, type=_schema_arg,
                        help="schema of the marts (default: env TA_SCHEMA, else traffic)")
    parser.set_defaults(func=_command)
    return parser
