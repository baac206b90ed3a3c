"""The nightly benchmark's harness on a small lake: the pandas reference and the database agree.

The project is built for real (`dbt run`, every model, into a schema of its own) and
bench/reference_pandas.py runs on the same files; every hourly count, the components kept per
hour and both outlier lists must be equal. The memory sampler must see the client process tree
and the backends serving it.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys

import pytest

from traffic_anomalies import bench_nightly

from conftest import server_readable_dir

USERS, DAYS = 60, 30


@pytest.fixture(scope="module")
def agreement(module_dbt_project, tmp_path_factory):
    lake_root = server_readable_dir("bench")
    try:
        lake, _ = bench_nightly.ensure_lake(lake_root, USERS, DAYS)
        run_date = bench_nightly.START + dt.timedelta(days=DAYS - 1)
        dbt_vars = {"lake_root": str(lake), "run_date": run_date.isoformat()}
        module_dbt_project.run("run-operation", "stage_external_sources", vars=dbt_vars)
        module_dbt_project.run("run", vars=dbt_vars)
        out = tmp_path_factory.mktemp("reference")
        reference = bench_nightly.run_reference(lake, run_date, out, write_counts=True)
        yield reference, bench_nightly.compare(module_dbt_project.schema, out, full_counts=True)
    finally:
        shutil.rmtree(lake_root, ignore_errors=True)


def test_hourly_counts_agree(agreement):
    reference, result = agreement
    totals = result["hourly_counts_totals"]
    assert totals["equal"], totals
    assert totals["pandas"]["flows"] > 10_000 and totals["pandas"]["days"] == DAYS
    assert result["hourly_counts_by_day_hour"]["differing_cells"] == 0, result["hourly_counts_by_day_hour"]
    assert result["hourly_counts_rows"]["rows"] == totals["pandas"]["rows"]
    assert result["hourly_counts_rows"]["differing_rows"] == 0, result["hourly_counts_rows"]
    assert reference["peak_rss_mb"] > 50 and reference["wall_s"] > 0


def test_pca_and_outliers_agree(agreement):
    _, result = agreement
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
