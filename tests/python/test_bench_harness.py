"""The nightly benchmark's harness on a small lake: the pandas reference and the database agree.

The project is built for real (`dbt run`, every model, into a schema of its own) and
bench/reference_pandas.py runs on the same files; every hourly count, the components kept per
hour and both outlier lists must be equal. The memory sampler must see the client process tree
and the backends serving it.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from traffic_anomalies_dev import bench_nightly


@pytest.fixture(scope="module")
def agreement(sample_built, sample_lake, tmp_path_factory):
    """The pandas reference on the files of conftest's sample lake, against the shared build
    of the whole project on it (`dbt run`: every model, run_date = the lake's last day)."""
    lake = Path(sample_lake.out_dir).resolve()
    days = sorted(dt.date.fromisoformat(p.name.removeprefix("dt=")) for p in (lake / "flows").glob("dt=*"))
    out = tmp_path_factory.mktemp("reference")
    reference = bench_nightly.run_reference(lake, days[-1], out, write_counts=True)
    return reference, bench_nightly.compare(sample_built.schema, out, full_counts=True), len(days)


def test_hourly_counts_agree(agreement):
    reference, result, days = agreement
    totals = result["hourly_counts_totals"]
    assert totals["equal"], totals
    assert totals["pandas"]["flows"] > 10_000 and totals["pandas"]["days"] == days
    assert result["hourly_counts_by_day_hour"]["differing_cells"] == 0, result["hourly_counts_by_day_hour"]
    assert result["hourly_counts_rows"]["rows"] == totals["pandas"]["rows"]
    assert result["hourly_counts_rows"]["differing_rows"] == 0, result["hourly_counts_rows"]
    assert reference["peak_rss_mb"] > 50 and reference["wall_s"] > 0


def test_pca_and_outliers_agree(agreement):
    _, result, _ = agreement
    assert result["components_per_hour"]["equal"], result["components_per_hour"]
    assert result["component_max_abs_diff_up_to_sign"] < 1e-6
    for method, outliers in result["outliers"].items():
        assert outliers["database"] > 0, method
        assert outliers["equal"], (method, outliers)
    assert result["agree"]


def test_memory_sampler_sees_client_and_backends(database):
    code = ("import psycopg2, time; c = psycopg2.connect(''); cur = c.cursor(); "
            "cur.execute('select count(*) from generate_series(1, 3000000)'); time.sleep(0.6)")
    proc = subprocess.Popen([sys.executable, "-c", code])
    with bench_nightly.MemorySampler(proc.pid, interval=0.05) as sampler:
        assert proc.wait(timeout=60) == 0
    memory = sampler.result()
    assert memory["samples"] > 3
    assert memory["client_tree_peak_rss_mb"] > 10
    assert memory["backends_peak_count"] >= 1 and memory["backends_peak_private_mb"] > 0


def test_pca_benchmark_report_on_small_matrices(database, tmp_path):
    """`bench pca` end to end at a toy size: every call style runs, agrees with numpy, and the
    report names the commit it measured (figures are only comparable between commits)."""
    from traffic_anomalies_dev import bench_pca

    out = tmp_path / "pca.json"
    report = bench_pca.run(out_path=out, days=8, users=40, hours=2)
    assert report["agrees_with_numpy"] is True
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=bench_pca.PROJECT_DIR,
                          capture_output=True, text=True).stdout.strip()
    assert report["code"]["commit"] == head
    timings = report["timings_s"]["madlib_compat"]
    assert set(timings["per_hour_calls"]) == {"k5", "p099"}
    assert all(v > 0 for mode in timings.values() for v in mode.values())
    text = out.with_suffix(".md").read_text()
    assert f"Code: commit {head[:10]}" in text
    assert "| madlib_compat, 2 calls (one per hour) |" in text
    assert report["madlib"] is None and "MADlib" not in text     # this database has none


def test_pca_benchmark_measures_madlib_where_installed(madlib_database, tmp_path):
    """`bench pca` in a database with Apache MADlib: MADlib's per-hour calls on the same
    matrices, checked against numpy, and madlib_compat's speed-up over it in the report."""
    from conftest import MADLIB_DATABASE

    from traffic_anomalies_dev import bench_pca

    out = tmp_path / "pca.json"
    report = bench_pca.run(dsn=f"dbname={MADLIB_DATABASE}", out_path=out, days=8, users=40, hours=2)
    assert report["agrees_with_numpy"] is True
    madlib = report["madlib"]
    compat = report["timings_s"]["madlib_compat"]["per_hour_calls"]
    for name in ("k5", "p099"):
        assert madlib["timings_s"]["per_hour_calls"][name] > 0
        assert madlib["compat_speedup"][name] == madlib["timings_s"]["per_hour_calls"][name] / compat[name]
        agreement = madlib["agreement"][name]
        assert agreement["k_matches_numpy"], agreement
        assert agreement["max_std_dev_rel_err"] < 1e-8 and agreement["max_component_abs_err"] < 1e-8, agreement
    text = out.with_suffix(".md").read_text()
    assert "| MADlib pca_sparse_train, 2 calls (one per hour) |" in text
    assert "| madlib_compat faster than MADlib |" in text
