"""`traffic-anomalies demo`: the main job end to end on the embedded default.

Generates a sample lake (once), starts the local database when none is configured, and runs
the nightly pipeline for the lake's last day; the nightly summary says where results are.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from traffic_anomalies import PROJECT_DIR, localdb, nightly


def last_lake_day(lake: Path) -> dt.date:
    days = sorted(p.name.removeprefix("dt=") for p in (lake / "flows").glob("dt=*") if p.is_dir())
    if not days:
        raise SystemExit(f"error: no dt=YYYY-MM-DD partitions under {lake / 'flows'}")
    return dt.date.fromisoformat(days[-1])


def _demo_command(args: argparse.Namespace) -> int:
    from traffic_anomalies_dev.lake import generate_lake

    lake = Path(args.lake).resolve()
    manifest = lake / "manifest.json"
    if manifest.exists():
        print(f"sample lake: {lake} (already generated; delete it to regenerate)", file=sys.stderr)
    else:
        summary = generate_lake(lake, users=args.users, days=args.days, start=args.start, seed=args.seed)
        print(f"sample lake: {lake}: {len(summary.files)} files, {summary.valid_lines:,} flows, "
              f"{summary.malformed_lines} malformed lines, {summary.incidents} injected incidents "
              f"(ground truth in {lake / 'ground_truth.csv'})", file=sys.stderr)
    try:
        print(localdb.up(), file=sys.stderr)
    except localdb.DatabaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    date = last_lake_day(lake)
    argv = ["nightly", "--date", date.isoformat(), "--lake", str(lake), "--workers", str(args.workers)]
    code = nightly.main(argv)
    report = PROJECT_DIR / "target" / "report" / date.isoformat() / "index.html"
    print(json.dumps({"lake": str(lake), "run_date": date.isoformat(), "exit_code": code,
                      "report": str(report) if report.exists() else None}))
    return code


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="sample lake + local database + nightly run, end to end")
    demo.add_argument("--lake", default=str(PROJECT_DIR / "lake"), help="where the sample lake goes (default lake/)")
    demo.add_argument("--users", type=int, default=200)
    demo.add_argument("--days", type=int, default=35)
    demo.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2017, 1, 1))
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--workers", type=int, default=2)
    demo.set_defaults(func=_demo_command)
