"""`traffic-anomalies report --date D`: the anomaly report as one static HTML file.

`build_report(date)` reads the report models and marts of the schema (env TA_SCHEMA, default
`traffic`) and writes `target/report/<date>/index.html` (inline CSS and inline SVG, no script,
no external asset: it opens offline and can be mailed) and `target/report/index.html`, the list
of every night's page. What the page shows and in which order is selected in SQL:

* tonight's incidents, new ones first, then those still open (rpt_incidents), each with the
  user's day × hour heatmap (int_hourly_counts), the evidence against the user's usual and the
  detectors that fired;
* the lake's data quality: lines loaded and quarantined by reason, freshness (rpt_data_quality),
  and how long the night's steps took (the nightly's records in ta_meta.step_state);
* the per-hour PCA diagnostics: scree (fct_pca_components), SPE against its limit (fct_day_anomalies);
* incidents and spikes per kept night (rpt_nights), with a link to the previous night's page;
* tonight's residual spikes cell by cell, new ones first (rpt_spikes).

Plots are drawn with matplotlib (SVG, text kept as text), the page by templates/report.html.j2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traffic_anomalies import PROJECT_DIR

DEFAULT_SCHEMA = "traffic"
MAX_SPIKES = 30          # rows of the spike table
MAX_INCIDENTS = 12       # incidents shown, each with its user's heatmap
PACKAGE = "traffic_anomalies"
# Docs pages are linked relative to the report: target/report/<date>/index.html -> target/index.html
DOCS_INDEX = "../../index.html"
REQUIRED = ("rpt_spikes", "rpt_nights", "rpt_data_quality", "rpt_incidents", "dim_days", "dim_users",
            "int_hourly_counts", "fct_pca_components", "fct_day_anomalies", "fct_user_spikes", "fct_incidents")
ONE_RUN = ("dim_days", "dim_users", "fct_pca_components", "fct_day_anomalies", "fct_user_spikes", "rpt_spikes",
           "fct_incidents", "rpt_incidents")

# Okabe–Ito, colour-blind safe
NORMAL, ANOMALY, CUMULATIVE, LIMIT, SPIKE = "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#000000"


class ReportError(RuntimeError):
    """The report cannot be built (a missing model, an empty window): the message says why."""


@dataclass
class ReportData:
    """Everything the report shows, as read from the database, in the database's order."""

    schema: str
    days: list[dt.date]
    user_count: int
    spikes: list[dict[str, Any]]
    spike_count: int
    new_count: int
    quality: list[dict[str, Any]]
    nights: list[dict[str, Any]]
    components: dict[int, list[tuple[int, float, float]]]
    day_errors: dict[int, list[tuple[dt.date, float, float | None, bool]]]
    activity: dict[str, dict[tuple[dt.date, int], int]] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    incidents: list[dict[str, Any]] = field(default_factory=list)
    incident_count: int = 0
    new_incident_count: int = 0

    @property
    def heatmap_users(self) -> list[str]:
        """Users of the incidents shown, in their order."""
        return list(dict.fromkeys(row["user_name"] for row in self.incidents))

    @property
    def incident_anchors(self) -> dict[tuple[str, dt.date], str]:
        """(user, day) -> the id of its incident's card, for links from the spike table."""
        return {(row["user_name"], row["activity_date"]): incident_anchor(row) for row in self.incidents}


def incident_anchor(row: dict[str, Any]) -> str:
    return f"incident-{row['activity_date']}-{row['user_name']}"


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


def _rows(cur, schema: str, relation: str, text: str, params: tuple = ()) -> list[dict[str, Any]]:
    """Rows of `text` as dicts, `{}` being the schema's relation (quoted as an identifier)."""
    from psycopg2 import sql

    cur.execute(sql.SQL(text).format(sql.Identifier(schema, relation)), params)
    names = [column.name for column in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def check_one_run(cur, schema: str) -> None:
    """The marts the report reads must show one nightly run, or the page would mix two nights."""
    runs: dict[str, list[str]] = {}
    for mart in ONE_RUN:
        for row in _rows(cur, schema, mart, "select distinct run_id, run_date from {}"):
            runs.setdefault(f"{row['run_id']} ({row['run_date']})", []).append(mart)
    if len(runs) > 1:
        shown = "; ".join(f"{run}: {', '.join(marts)}" for run, marts in sorted(runs.items()))
        raise ReportError(f"the marts of schema {schema!r} mix nightly runs ({shown}): rerun the nightly")


# The night's steps as the nightly command recorded them when each finished (runstate.py): one
# row per step (a step of several tasks would show first start to last finish).
STEP_DURATIONS = """
    select
        step,
        count(*) as tasks,
        min(finished_at - make_interval(secs => elapsed_s)) at time zone 'UTC' as started_at,
        max(finished_at) at time zone 'UTC' as finished_at,
        extract(epoch from max(finished_at) - min(finished_at - make_interval(secs => elapsed_s)))
            as wall_s,
        sum(elapsed_s) as busy_s,
        string_agg(distinct run_id, ', ') as run_ids
    from ta_meta.step_state
    where target_schema = %s and run_date = %s and elapsed_s is not null
    group by 1
    order by min(finished_at - make_interval(secs => elapsed_s)), 1
"""


def load_step_durations(cur, schema: str, run_date: dt.date) -> list[dict[str, Any]]:
    """How long each step of the night took; empty when the nightly command did not build it
    (plain dbt) or its records have moved on to a later night."""
    cur.execute("select to_regclass('ta_meta.step_state')")
    if cur.fetchone()[0] is None:
        return []
    cur.execute(STEP_DURATIONS, (schema, run_date))
    names = [column.name for column in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def load_report_data(conn, schema: str, max_spikes: int = MAX_SPIKES) -> ReportData:
    with conn.cursor() as cur:
        cur.execute("select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
                    " where n.nspname = %s", (schema,))
        present = {row[0] for row in cur.fetchall()}
        missing = [name for name in REQUIRED if name not in present]
        if missing:
            raise ReportError(f"schema {schema!r} lacks {', '.join(missing)}: "
                              "build the marts first (traffic-anomalies nightly)")
        check_one_run(cur, schema)
        days = [r["activity_date"] for r in _rows(cur, schema, "dim_days", "select activity_date from {} order by 1")]
        if not days:
            raise ReportError(f"{schema}.dim_days is empty: there is no PCA window to report on")
        user_count = _rows(cur, schema, "dim_users", "select count(*) as n from {}")[0]["n"]
        totals = _rows(cur, schema, "rpt_spikes", "select count(*) as n, count(*) filter (where is_new) as new from {}")[0]
        spikes = _rows(cur, schema, "rpt_spikes", "select * from {} where report_rank <= %s order by report_rank",
                       (max_spikes,))
        quality = _rows(cur, schema, "rpt_data_quality",
                        "select * from {} order by line_status, line_count desc, reject_reason")
        nights = _rows(cur, schema, "rpt_nights", "select * from {} order by run_date")
        components: dict[int, list] = {}
        for r in _rows(cur, schema, "fct_pca_components", "select hour_of_day, component_rank, proportion,"
                       " cumulative_proportion from {} order by hour_of_day, component_rank"):
            components.setdefault(int(r["hour_of_day"]), []).append(
                (int(r["component_rank"]), float(r["proportion"]), float(r["cumulative_proportion"])))
        day_errors: dict[int, list] = {}
        for r in _rows(cur, schema, "fct_day_anomalies", "select hour_of_day, activity_date, spe, spe_threshold,"
                       " coalesce(is_anomalous, false) as is_anomalous from {} order by hour_of_day, activity_date"):
            day_errors.setdefault(int(r["hour_of_day"]), []).append(
                (r["activity_date"], float(r["spe"] or 0.0),
                 None if r["spe_threshold"] is None else float(r["spe_threshold"]), bool(r["is_anomalous"])))
        data = ReportData(schema, days, int(user_count), spikes, int(totals["n"]), int(totals["new"]), quality,
                          nights, components, day_errors)
        counted = _rows(cur, schema, "rpt_incidents", "select count(*) as n, count(*) filter (where is_new) as new from {}")[0]
        data.incident_count, data.new_incident_count = int(counted["n"]), int(counted["new"])
        data.incidents = _rows(cur, schema, "rpt_incidents", "select * from {} where report_rank <= %s order by report_rank",
                               (MAX_INCIDENTS,))
        users = data.heatmap_users
        if users:
            for r in _rows(cur, schema, "int_hourly_counts", "select user_name, activity_date, hour_of_day, flow_count"
                           " from {} where user_name = any(%s) and activity_date between %s and %s",
                           (users, days[0], days[-1])):
                data.activity.setdefault(r["user_name"], {})[(r["activity_date"], int(r["hour_of_day"]))] = int(r["flow_count"])
        data.steps = load_step_durations(cur, schema, days[-1])
    return data


# --- plots --------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "svg.fonttype": "none",       # text stays <text>: searchable, and checked by the tests
        "svg.hashsalt": "traffic-anomalies",  # stable ids: the same data gives the same file
        "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9,
        "axes.spines.top": False, "axes.spines.right": False,
        "axes.formatter.use_mathtext": False, "axes.formatter.limits": (-4, 6),
    })
    return plt


def _svg(fig, label: str, full_width: bool = False) -> str:
    """The figure as an inline <svg> (no XML prolog), its bounding box tight so nothing is cut."""
    plt = _pyplot()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", pad_inches=0.05, metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    # scale with the page: the width is the container's, the height follows the aspect ratio
    size = "width:100%" if full_width else "max-width:100%"
    return text.replace("<svg ", f'<svg class="plot" role="img" aria-label="{label}" style="{size};height:auto" ', 1)


def heatmap_svg(user: str, data: ReportData, incident: dict[str, Any] | None = None) -> str:
    """The user's flows per day (rows) and hour (columns), log colour scale; the incident's hours
    ringed (orange: new tonight, black: still open)."""
    import numpy as np
    from matplotlib.colors import LogNorm

    plt = _pyplot()
    cells = data.activity.get(user, {})
    grid = np.array([[cells.get((day, hour), 0) for hour in range(24)] for day in data.days], dtype=float)
    fig, ax = plt.subplots(figsize=(7.5, 0.8 + 0.14 * len(data.days)))
    image = ax.imshow(np.where(grid > 0, grid, np.nan), aspect="auto", cmap="Blues",
                      norm=LogNorm(vmin=1, vmax=max(2.0, grid.max())), interpolation="nearest")
    ax.set_facecolor("#f4f4f4")
    ax.set_xticks(range(0, 24, 2), [f"{h:02d}" for h in range(0, 24, 2)])
    step = 1 if len(data.days) <= 16 else 2
    rows = sorted(set(range(len(data.days) - 1, -1, -step)))  # the run date always labelled
    ax.set_yticks(rows, [data.days[i].isoformat() for i in rows])
    ax.set_xlabel("hour of day (UTC)")
    ax.set_ylabel("day")
    if incident is not None and incident["activity_date"] in data.days:
        row = data.days.index(incident["activity_date"])
        for hour in incident["hours"]:
            ax.add_patch(plt.Rectangle((hour - 0.5, row - 0.5), 1, 1, fill=False,
                                       edgecolor=ANOMALY if incident["is_new"] else SPIKE, linewidth=2))
    from matplotlib.ticker import LogLocator, StrMethodFormatter

    bar = fig.colorbar(image, ax=ax, label="flows in the hour (log scale)", pad=0.01)
    bar.ax.yaxis.set_major_locator(LogLocator(base=10))
    bar.ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))  # 1, 10, 100: no exponents
    bar.ax.yaxis.set_minor_formatter(StrMethodFormatter(""))
    return _svg(fig, f"flows of {user} per day and hour")


def _grid(title: str):
    plt = _pyplot()
    fig, axes = plt.subplots(4, 6, figsize=(13, 8.5), constrained_layout=True)
    fig.suptitle(title)
    return fig, axes.ravel()


def scree_svg(data: ReportData) -> str:
    """One panel per hour: share of variance of each kept component and the cumulative share."""
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    fig, axes = _grid("Kept components per hour: share of variance (bars) and cumulative share (line)")
    for hour, ax in enumerate(axes):
        comps = data.components.get(hour, [])
        ranks = [c[0] for c in comps]
        ax.bar(ranks, [c[1] for c in comps], color=NORMAL)
        ax.plot(ranks, [c[2] for c in comps], color=CUMULATIVE, marker=".")
        ax.set_title(f"{hour:02d}:00 UTC")
        ax.set_ylim(0, 1.05)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        ax.set_xlabel("component")
        ax.set_ylabel("variance")
    return _svg(fig, "scree plot of each hour", full_width=True)


def spe_svg(data: ReportData) -> str:
    """One panel per hour: each day's SPE (anomalous days in orange) against the hour's limit."""
    import matplotlib.dates as mdates
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    fig, axes = _grid("SPE of each day per hour against the hour's limit Q (dashed); anomalous days in orange")
    for hour, ax in enumerate(axes):
        rows = data.day_errors.get(hour, [])
        ax.bar([r[0] for r in rows], [r[1] for r in rows], width=0.8,
               color=[ANOMALY if r[3] else NORMAL for r in rows])
        limit = next((r[2] for r in rows if r[2] is not None), None)
        if limit is not None:
            ax.axhline(limit, color=LIMIT, linestyle="--", linewidth=1.5)
        ax.set_title(f"{hour:02d}:00 UTC")
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.yaxis.set_major_formatter(FuncFormatter(_round_tick))
        ax.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, len(data.days) // 3)))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
        ax.set_xlabel("day")
        ax.set_ylabel("SPE")
    return _svg(fig, "SPE per day of each hour", full_width=True)


def _round_tick(value: float, _position: int) -> str:
    """1,500 rather than 1.5e+03; two significant digits below 10 (0.25, 0.0004)."""
    return f"{value:,.0f}" if abs(value) >= 10 or value == 0 else f"{value:.2g}"


def history_svg(data: ReportData) -> str:
    """Incidents per kept night, those the night reported first stacked on those still open."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9.5, 2.4))
    dates = [n["run_date"].isoformat() for n in data.nights]
    new = [int(n["new_incidents"]) for n in data.nights]
    old = [int(n["incidents"]) - v for n, v in zip(data.nights, new)]
    ax.bar(dates, old, width=0.6, color=SPIKE, label="still open")
    ax.bar(dates, new, width=0.6, bottom=old, color=ANOMALY, label="new that night")
    ax.set_xlim(-0.7, max(len(dates), 7) - 0.3)  # one night is a bar, not the whole panel
    ax.set_xlabel("night (run date)")
    ax.set_ylabel("incidents")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig, "incidents per night")


# --- the page -----------------------------------------------------------------------------------


def docs_link(model: str) -> str:
    return f"{DOCS_INDEX}#!/model/model.{PACKAGE}.{model}"


def render_html(data: ReportData, date: str, previous: str | None,
                generated_at: dt.datetime | None = None) -> str:
    """The page; `previous`: the previous night's run date when its page exists."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader(PACKAGE, "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2").render(
        data=data, date=date, previous=previous, docs_link=docs_link, docs_index=DOCS_INDEX,
        incidents=[(row, incident_anchor(row), heatmap_svg(row["user_name"], data, row)) for row in data.incidents],
        scree=scree_svg(data), spe=spe_svg(data), history=history_svg(data) if data.nights else None,
        colours={"new": ANOMALY, "old": SPIKE},
        generated_at=(generated_at or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC"),
    )


def render_index(dates: list[str]) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader(PACKAGE, "templates"), autoescape=True)
    return env.get_template("report_index.html.j2").render(dates=sorted(dates, reverse=True))


def _as_date(value: str | dt.date) -> str:
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise ReportError(f"not a date (YYYY-MM-DD): {value!r}") from None


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def build_report(date: str | dt.date, schema: str | None = None, output_root: Path | None = None) -> Path:
    """Write <output_root>/report/<date>/index.html (default output_root: the project's target/,
    where the docs site is generated) and refresh <output_root>/report/index.html."""
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
    root = Path(output_root or PROJECT_DIR / "target") / "report"
    earlier = [n["run_date"].isoformat() for n in data.nights if n["run_date"].isoformat() < day]
    previous = next((d for d in reversed(earlier) if (root / d / "index.html").exists()), None)
    (root / day).mkdir(parents=True, exist_ok=True)
    path = root / day / "index.html"
    _write(path, render_html(data, day, previous))
    dates = [p.parent.name for p in root.glob("*/index.html")]
    _write(root / "index.html", render_index(dates))
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
