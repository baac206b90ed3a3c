"""`traffic-anomalies lake generate`."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

from traffic_anomalies_dev.lake.generate import generate_lake
from traffic_anomalies_dev.lake.spec import (
    ANOMALY_KINDS, DEFAULT_ANOMALY_DAYS, DEFAULT_DAYS, DEFAULT_MALFORMED_RATE, DEFAULT_PARTS_PER_DAY,
    DEFAULT_SEED, DEFAULT_START, DEFAULT_USERS, AnomalySpec, as_date, parse_anomalies,
)



def _anomalies_arg(text: str) -> list[AnomalySpec]:
    try:
        return parse_anomalies(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _date_arg(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``lake generate`` on a sub-command set; the handler is ``args.func``."""
    lake = subparsers.add_parser("lake", help="the sample data lake: generate")
    actions = lake.add_subparsers(dest="lake_action", required=True)
    gen = actions.add_parser(
        "generate",
        help="write a deterministic sample lake of network-flow logs",
        description="Write a deterministic sample lake: flows/dt=*/part-*.csv.gz, ground_truth.csv, "
        "malformed.csv, manifest.json.",
    )
    gen.add_argument("--out", required=True, type=Path, help="lake root directory")
    gen.add_argument("--users", type=int, default=DEFAULT_USERS, help=f"number of users (default {DEFAULT_USERS})")
    gen.add_argument("--days", type=int, default=DEFAULT_DAYS, help=f"number of days (default {DEFAULT_DAYS})")
    gen.add_argument("--start", type=_date_arg, default=as_date(DEFAULT_START), help=f"first day, YYYY-MM-DD (default {DEFAULT_START})")
    gen.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    gen.add_argument("--clean", action="store_true", help="write no malformed lines")
    gen.add_argument("--parts-per-day", type=int, default=DEFAULT_PARTS_PER_DAY,
                     help=f"files per day (default {DEFAULT_PARTS_PER_DAY})")
    gen.add_argument("--anomalies", type=_anomalies_arg, default=None, metavar="KIND:MAG:COUNT,...",
                     help="anomalies to inject, e.g. spike:10:2,port_scan:20:1 ('none' for none; "
                     f"kinds: {', '.join(ANOMALY_KINDS)}); default: a handful of mixed ones")
    gen.add_argument("--malformed-rate", type=float, default=DEFAULT_MALFORMED_RATE,
                     help=f"share of extra malformed lines (default {DEFAULT_MALFORMED_RATE})")
    gen.add_argument("--anomaly-days", type=int, default=DEFAULT_ANOMALY_DAYS,
                     help=f"anomalies fall in the last N days (default {DEFAULT_ANOMALY_DAYS})")
    gen.add_argument("--user-style", choices=["names", "ids"], default="names",
                     help="user names like jane.doe (default) or u00042")
    gen.add_argument("--workers", type=int, default=None, help="processes (default: automatic)")
    gen.set_defaults(func=run_generate)
    return lake


def run_generate(args: argparse.Namespace) -> int:
    try:
        summary = generate_lake(
            args.out,
            users=args.users,
            days=args.days,
            start=args.start,
            seed=args.seed,
            clean=args.clean,
            anomalies=args.anomalies,
            malformed_rate=args.malformed_rate,
            parts_per_day=args.parts_per_day,
            anomaly_days=args.anomaly_days,
            user_style=args.user_style,
            workers=args.workers,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary.one_line())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="traffic-anomalies")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["lake", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

