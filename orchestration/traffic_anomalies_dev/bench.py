"""`traffic-anomalies bench <name>`: the benchmarks; results go to bench/results/.

Each benchmark registers one sub-command below. `bench` alone (what `make bench` runs) runs
the nightly benchmark, which also runs the PCA benchmark's functions for its PCA-step figures.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _pca(args: argparse.Namespace) -> int:
    from traffic_anomalies_dev import bench_pca

    return bench_pca.run_args(args)


def _nightly(args: argparse.Namespace) -> int:
    from traffic_anomalies_dev import bench_nightly

    return bench_nightly.command(args)


def _default(args: argparse.Namespace) -> int:
    """`bench` without a name: the nightly benchmark at its default (full) size."""
    from traffic_anomalies_dev import bench_nightly

    defaults = argparse.ArgumentParser()
    bench_nightly.add_arguments(defaults)
    return bench_nightly.command(defaults.parse_args([]))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from traffic_anomalies_dev import bench_nightly, bench_pca

    bench = subparsers.add_parser("bench", help="benchmarks (results in bench/results/)")
    bench.set_defaults(func=_default)
    names = bench.add_subparsers(dest="benchmark")
    # one sub-command per benchmark: name, options (the module's add_arguments), runner
    pca = names.add_parser(
        "pca", help="in-database PCA (madlib_compat train + project, MADlib when installed) against numpy: bench/results/pca.*",
        description=(bench_pca.__doc__ or "").splitlines()[0])
    bench_pca.add_arguments(pca)
    pca.set_defaults(func=_pca)
    nightly = names.add_parser(
        "nightly", help="the full nightly run, an incremental night and scaling vs pandas in memory",
        description=(bench_nightly.__doc__ or "").splitlines()[0])
    bench_nightly.add_arguments(nightly)
    nightly.set_defaults(func=_nightly)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="traffic-anomalies")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
