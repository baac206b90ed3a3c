"""`traffic-anomalies`: the one front door (database, lake, dbt, nightly run, reports, benchmarks)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from traffic_anomalies import localdb

# Sub-command -> the module that defines it (add_parser(subparsers) sets `func`). Only the
# module of the command being run is imported: `db status` does not pay for dbt or luigi. The
# development tooling (sample lakes, demo, evaluation, benchmarks) lives in the sibling package
# traffic_anomalies_dev.
COMMAND_MODULES: dict[str, str] = {
    "lake": "traffic_anomalies_dev.lake",
    "demo": "traffic_anomalies_dev.demo",
    "nightly": "traffic_anomalies.nightly",
    "backfill": "traffic_anomalies.nightly",
    "scheduler": "traffic_anomalies.nightly",
    "report": "traffic_anomalies.report",
    "docs": "traffic_anomalies.docs",
    "evaluate": "traffic_anomalies_dev.evaluate",
    "bench": "traffic_anomalies_dev.bench",
    "gpfdist": "traffic_anomalies.gpfdist",
}


def _db_command(args: argparse.Namespace) -> int:
    try:
        if args.action == "up":
            print(localdb.up())
            if args.madlib:
                print(localdb.install_madlib(args.madlib))
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


class Parser(argparse.ArgumentParser):
    """argparse, with a refused argument said in one line on stderr (exit status 2, as every
    input error of the command line): the usage is one `--help` away."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv`: the named command's module only, every module for help or a typo."""
    parser = Parser(
        prog="traffic-anomalies",
        description="Anomalous users in network-traffic logs, computed in PostgreSQL or Greenplum.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    db = sub.add_parser("db", help="the database: up | down | status | env")
    db.add_argument("action", choices=["up", "down", "status", "env"])
    db.add_argument("--madlib", metavar="TARBALL",
                    help="with up: install the Apache MADlib build in TARBALL (an install tree with "
                         "install-madlib.sh at its top) into the database; see README, MADlib")
    db.set_defaults(func=_db_command)
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    command = words[0] if words else None
    if command == "db":
        modules: list[str] = []
    elif command in COMMAND_MODULES:
        modules = [COMMAND_MODULES[command]]
    else:  # help, or a command argparse is about to say it does not know
        modules = list(dict.fromkeys(COMMAND_MODULES.values()))
    for name in modules:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
