"""`traffic-anomalies`: the one front door (database, lake, dbt, nightly run, reports, benchmarks)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from traffic_anomalies import localdb

# Sub-command modules; each exposes add_parser(subparsers) and sets `func` on its parser.
# Imported lazily by name so that `db status` does not pay for importing dbt or luigi.
COMMAND_MODULES: tuple[str, ...] = (
    "traffic_anomalies.lake",
    "traffic_anomalies.demo",
    "traffic_anomalies.nightly",
    "traffic_anomalies.report",
    "traffic_anomalies.docs",
    "traffic_anomalies.evaluate",
    "traffic_anomalies.bench",
)


def _db_command(args: argparse.Namespace) -> int:
    try:
        if args.action == "up":
            print(localdb.up())
        elif args.action == "down":
            print(localdb.down())
        elif args.action == "status":
            ok, message = localdb.status()
            print(message)
            return 0 if ok else 1
        elif args.action == "env":
            print("\n".join(localdb.env_lines()))
    except localdb.DatabaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="traffic-anomalies",
        description="Anomalous users in network-traffic logs, computed in PostgreSQL or Greenplum.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    db = sub.add_parser("db", help="the database: up | down | status | env")
    db.add_argument("action", choices=["up", "down", "status", "env"])
    db.set_defaults(func=_db_command)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
