"""The benchmark's two references read the same lake the same way: bench/reference_duckdb.py
(DuckDB's CSV reader and SQL) gives the hourly counts of bench/reference_pandas.py, row for row,
on a small generated lake (its malformed lines included) to which files of awkward lines are
added: repeated lines, a distrusted file, a CRLF file, and lines that only one field breaks."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

from traffic_anomalies import PROJECT_DIR

HEADER = b"start_time,user_name,src_ip,dst_ip,dst_port,protocol,bytes"
END = dt.date(2017, 1, 6)


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, PROJECT_DIR / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return sys.modules[name]


def _awkward_lines(day: dt.date) -> list[bytes]:
    d = day.isoformat().encode()
    ok = d + b"T01:02:03Z,ann,10.0.0.1,10.0.0.2,443,tcp,10"
    epoch = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp())
    before, after = day - dt.timedelta(days=1), day + dt.timedelta(days=2)
    return [
        ok, ok,  # a repeated line: one flow
        str(epoch + 3600).encode() + b".25,ann,10.0.0.1,10.0.0.2,443,tcp,10",  # fractional epoch
        d + b"T05:00:00.123456Z,ann,10.0.0.1,10.0.0.2,443,tcp,10",
        d + b"T05:00:00Z,zo\xc3\xab,10.0.0.1,fe80::1,443,tcp,10",  # UTF-8 user, IPv6
        d + b"T05:00:00Z,zo\xeb,10.0.0.1,10.0.0.2,443,tcp,10",  # not UTF-8
        d + b"T05:00:00Z,an\x01n,10.0.0.1,10.0.0.2,443,tcp,10",  # control character
        d + b"T05:00:00Z,an\tn,10.0.0.1,10.0.0.2,443,tcp,10",
        d + b"T05:00:00Z," + b"x" * 128 + b",10.0.0.1,10.0.0.2,443,tcp,10",
        d + b"T05:00:00Z," + b"x" * 129 + b",10.0.0.1,10.0.0.2,443,tcp,10",
        d + b"T05:00:00Z, ann,10.0.0.1,10.0.0.2,443,tcp,10",
        d + b"T05:00:00Z,\"ann\",10.0.0.1,10.0.0.2,443,tcp,10",  # quotes are characters
        d + b"T05:00:00Z,ann,10.0.0.01,10.0.0.2,443,tcp,10",
        d + b"T05:00:00Z,ann,1::2::3,10.0.0.2,443,tcp,10",
        d + b"T05:00:00Z,ann,10.0.0.1,10.0.0.2,65536,tcp,10",
        d + b"T05:00:00Z,ann,10.0.0.1,10.0.0.2,00080,tcp,10",
        d + b"T05:00:00Z,ann,10.0.0.1,10.0.0.2,443,TCP,10",
        d + b"T05:00:00Z,ann,10.0.0.1,10.0.0.2,443,tcp,12345678901234",
        d + b"T05:00:00Z,ann,10.0.0.1,10.0.0.2,443,tcp,-1",
        d + b"T24:00:00Z,ann,10.0.0.1,10.0.0.2,443,tcp,10",
        d[:5] + b"02-30T01:00:00Z,ann,10.0.0.1,10.0.0.2,443,tcp,10",
        before.isoformat().encode() + b"T00:00:00Z,ann,10.0.0.1,10.0.0.2,443,tcp,10",  # first instant kept
        (before - dt.timedelta(days=1)).isoformat().encode() + b"T23:59:59Z,ann,10.0.0.1,10.0.0.2,443,tcp,10",
        after.isoformat().encode() + b"T00:00:00Z,ann,10.0.0.1,10.0.0.2,443,tcp,10",  # first instant out
        str(epoch - 86400).encode() + b",bob,10.0.0.1,10.0.0.2,443,tcp,10",
        str(epoch - 86401).encode() + b",bob,10.0.0.1,10.0.0.2,443,tcp,10",
        b"", b"a,b", ok + b",extra",
    ]


@pytest.fixture(scope="module")
def lake(lake_dir_factory) -> Path:
    from traffic_anomalies_dev.lake import generate_lake

    root = lake_dir_factory("references")
    generate_lake(root, users=30, days=6, start=END - dt.timedelta(days=5), seed=11)
    for day in (END - dt.timedelta(days=3), END):
        directory = root / "flows" / f"dt={day.isoformat()}"
        lines = _awkward_lines(day)
        (directory / "part-0100.csv").write_bytes(b"\n".join([HEADER, *lines]) + b"\n")
        (directory / "part-0101.csv").write_bytes(b"\r\n".join([HEADER, *lines[:5]]) + b"\r\n")  # CRLF, repeats
        (directory / "part-0102.csv").write_bytes(b"\n".join([b"user_name,start_time,src_ip,dst_ip,dst_port,protocol,bytes",
                                                              *lines[:3]]) + b"\n")  # distrusted
    return root


def test_duckdb_reference_counts_equal_the_pandas_reference(lake):
    pandas_ref, duckdb_ref = _module("reference_pandas"), _module("reference_duckdb")
    key = ["activity_date", "hour_of_day", "user_name"]
    expected = pandas_ref.hourly_counts(lake, END).sort_values(key).reset_index(drop=True)
    got = duckdb_ref.hourly_counts(lake, END).sort_values(key).reset_index(drop=True)
    assert len(expected) > 500 and expected["activity_date"].nunique() == 6
    assert "zoë" in set(expected["user_name"]) and "x" * 128 in set(expected["user_name"])
    pd.testing.assert_frame_equal(got.astype({"hour_of_day": "int64"}), expected.astype({"hour_of_day": "int64"}))


def test_duckdb_reference_writes_the_pandas_reference_outputs(lake, tmp_path):
    """The whole standalone run: the same summary counts, components kept per hour and outliers."""
    pandas_ref, duckdb_ref = _module("reference_pandas"), _module("reference_duckdb")
    summaries = {}
    for name, counter in (("pandas", None), ("duckdb", duckdb_ref.hourly_counts)):
        out = tmp_path / name
        assert pandas_ref.main(["--lake", str(lake), "--run-date", END.isoformat(), "--out", str(out),
                                "--window-days", "5"], counter=counter) == 0
        summaries[name] = out
    import json

    a, b = (json.loads((summaries[n] / "summary.json").read_text()) for n in ("pandas", "duckdb"))
    assert a["counts"] == b["counts"] and a["window"] == b["window"] and a["k_per_hour"] == b["k_per_hour"]
    assert a["outliers"] == b["outliers"]
    pd.testing.assert_frame_equal(pd.read_csv(summaries["duckdb"] / "outliers.csv"),
                                  pd.read_csv(summaries["pandas"] / "outliers.csv"))
