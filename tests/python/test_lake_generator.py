"""The sample-lake generator: format, determinism, malformed-line bookkeeping, ground truth, realism.

No database needed. Every lake here is small; the whole module runs in a few seconds.
"""

from __future__ import annotations

import argparse
import collections
import csv
import datetime as dt
import gzip
import ipaddress
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

try:
    from traffic_anomalies_dev import lake
except ImportError:  # not installed: run from the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "orchestration"))
    from traffic_anomalies_dev import lake

HEADER = "start_time,user_name,src_ip,dst_ip,dst_port,protocol,bytes"
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
USER = re.compile(r"^[a-z0-9._]+$")
PATH = re.compile(r"^flows/dt=(\d{4}-\d{2}-\d{2})/part-(\d{4})\.csv\.gz$")

ALL_KINDS = [
    lake.AnomalySpec("spike", 10, 2),
    lake.AnomalySpec("spike", 5, 1),
    lake.AnomalySpec("port_scan", 20, 1),
    lake.AnomalySpec("off_hours", 8, 2),
    lake.AnomalySpec("dormant_wakeup", 10, 1),
]
SMALL = dict(users=60, days=21, start="2017-01-02", seed=7, parts_per_day=3, anomalies=ALL_KINDS,
             malformed_rate=0.01, anomaly_days=7)


# ---------------------------------------------------------------------------------------------
# An independent, strict reader of the lake
# ---------------------------------------------------------------------------------------------


@dataclass
class Flow:
    when: dt.datetime
    user: str
    src: str
    dst: str
    port: int
    protocol: str
    nbytes: int


@dataclass
class ParsedLake:
    root: Path
    manifest: dict
    flows_by_file: dict[str, list[Flow]] = field(default_factory=dict)
    formats_by_file: dict[str, set[str]] = field(default_factory=dict)
    found_malformed: dict[tuple[str, int], str] = field(default_factory=dict)
    listed_malformed: dict[tuple[str, int], str] = field(default_factory=dict)
    ground_truth: list[dict[str, str]] = field(default_factory=list)

    def counts(self) -> collections.Counter:
        """Valid flows per (user, day, hour)."""
        c: collections.Counter = collections.Counter()
        for flows in self.flows_by_file.values():
            for f in flows:
                c[(f.user, f.when.date().isoformat(), f.when.hour)] += 1
        return c

    def all_flows(self) -> list[Flow]:
        return [f for flows in self.flows_by_file.values() for f in flows]


def parse_timestamp(text: str) -> tuple[dt.datetime, str] | None:
    if ISO.match(text):
        try:
            return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc), "iso8601"
        except ValueError:
            return None
    if text.isascii() and text.isdigit():
        return dt.datetime.fromtimestamp(int(text), dt.timezone.utc), "epoch"
    return None


def classify(raw: bytes) -> tuple[str, Flow | None, str | None]:
    """('valid', flow, format) or (malformed kind, None, None), by the lake's contract."""
    assert b"\x00" not in raw and b"\r" not in raw
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "garbage_bytes", None, None
    fields = next(csv.reader([text]))
    if len(fields) != 7:
        return "wrong_column_count", None, None
    ts, user, src, dst, port, protocol, nbytes = fields
    parsed = parse_timestamp(ts)
    if parsed is None:
        return "bad_timestamp", None, None
    if user == "":
        return "empty_user", None, None
    if re.fullmatch(r"-\d+", nbytes):
        return "negative_bytes", None, None
    if not re.fullmatch(r"\d+", nbytes):
        return "non_numeric_bytes", None, None
    return "valid", Flow(parsed[0], user, src, dst, int(port), protocol, int(nbytes)), parsed[1]


def read_lake(root: Path) -> ParsedLake:
    manifest = json.loads((root / "manifest.json").read_text())
    parsed = ParsedLake(root, manifest)
    for entry in manifest["files"]:
        path = entry["path"]
        raw = gzip.decompress((root / path).read_bytes())
        assert raw.endswith(b"\n")
        lines = raw[:-1].split(b"\n")
        assert lines[0] == HEADER.encode()
        flows, formats = [], set()
        for number, line in enumerate(lines[1:], start=2):
            kind, flow, fmt = classify(line)
            if kind == "valid":
                flows.append(flow)
                formats.add(fmt)
            else:
                parsed.found_malformed[(path, number)] = kind
        parsed.flows_by_file[path] = flows
        parsed.formats_by_file[path] = formats
    with open(root / "malformed.csv", newline="") as f:
        for row in csv.DictReader(f):
            parsed.listed_malformed[(row["file"], int(row["line_number"]))] = row["kind"]
    with open(root / "ground_truth.csv", newline="") as f:
        parsed.ground_truth = list(csv.DictReader(f))
    return parsed


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[lake.LakeSummary, ParsedLake]:
    root = tmp_path_factory.mktemp("lake")
    summary = lake.generate_lake(root, **SMALL)
    return summary, read_lake(root)


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_same_arguments_give_identical_bytes(tmp_path: Path) -> None:
    args = dict(users=25, days=8, seed=3, parts_per_day=2, anomaly_days=3, malformed_rate=0.01,
                anomalies=[lake.AnomalySpec("spike", 5, 1), lake.AnomalySpec("port_scan", 10, 1)])
    lake.generate_lake(tmp_path / "a", workers=1, **args)
    lake.generate_lake(tmp_path / "b", workers=2, **args)
    lake.generate_lake(tmp_path / "c", workers=1, **{**args, "seed": 4})
    a, b, c = (tree_bytes(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_rerun_replaces_an_earlier_lake(tmp_path: Path) -> None:
    lake.generate_lake(tmp_path, users=10, days=4, anomalies=[])
    first = tree_bytes(tmp_path)
    lake.generate_lake(tmp_path, users=10, days=2, anomalies=[])
    lake.generate_lake(tmp_path, users=10, days=4, anomalies=[])
    assert tree_bytes(tmp_path) == first
    assert not list(tmp_path.rglob("*.tmp"))


def test_layout_and_gzip_headers(small: tuple[lake.LakeSummary, ParsedLake]) -> None:
    summary, parsed = small
    days = [(dt.date(2017, 1, 2) + dt.timedelta(days=d)).isoformat() for d in range(SMALL["days"])]
    expected = {f"flows/dt={d}/part-{p:04d}.csv.gz" for d in days for p in range(SMALL["parts_per_day"])}
    on_disk = {str(p.relative_to(parsed.root)) for p in (parsed.root / "flows").rglob("*") if p.is_file()}
    assert on_disk == expected == {e["path"] for e in parsed.manifest["files"]}
    assert [str(p.relative_to(parsed.root)) for p in summary.files] == sorted(expected)
    for path in expected:
        head = (parsed.root / path).read_bytes()[:10]
        assert head[:3] == b"\x1f\x8b\x08"
        assert head[3] & 0x08 == 0, "no file name in the gzip header"
        assert head[4:8] == b"\x00\x00\x00\x00", "gzip mtime is 0"


def test_every_valid_line_is_well_typed(small: tuple[lake.LakeSummary, ParsedLake]) -> None:
    _, parsed = small
    total = 0
    for path, flows in parsed.flows_by_file.items():
        day = PATH.match(path).group(1)
        for f in flows:
            assert f.when.date().isoformat() == day
            assert USER.match(f.user)
            assert ipaddress.IPv4Address(f.src).is_private
            ipaddress.IPv4Address(f.dst)
            assert 0 <= f.port <= 65535
            assert f.protocol in ("tcp", "udp", "icmp")
            assert f.nbytes > 0
            if f.protocol == "icmp":
                assert f.port == 0
        times = [f.when for f in flows]
        assert times == sorted(times)
        total += len(flows)
    assert total == parsed.manifest["totals"]["valid_lines"] > 10_000


def test_timestamp_forms_per_file(small: tuple[lake.LakeSummary, ParsedLake]) -> None:
    _, parsed = small
    by_form = collections.Counter()
    for entry in parsed.manifest["files"]:
        formats = parsed.formats_by_file[entry["path"]]
        assert formats <= {entry["timestamp_format"]}, "one timestamp form per file"
        by_form[entry["timestamp_format"]] += 1
    assert by_form["epoch"] > 0 and by_form["iso8601"] > by_form["epoch"]


def test_malformed_csv_reconciles_line_by_line(small: tuple[lake.LakeSummary, ParsedLake]) -> None:
    summary, parsed = small
    assert parsed.found_malformed == parsed.listed_malformed
    assert set(parsed.found_malformed.values()) == set(lake.MALFORMED_KINDS)
    assert summary.malformed_lines == len(parsed.listed_malformed)
    for entry in parsed.manifest["files"]:
        bad = sum(1 for (path, _) in parsed.listed_malformed if path == entry["path"])
        assert entry["malformed_lines"] == bad
        assert entry["valid_lines"] == len(parsed.flows_by_file[entry["path"]])
        assert entry["lines"] == 1 + bad + entry["valid_lines"]
    share = summary.malformed_lines / (summary.valid_lines + summary.malformed_lines)
    assert 0.005 < share < 0.02


def test_clean_lake_has_no_malformed_lines(tmp_path: Path) -> None:
    summary = lake.generate_lake(tmp_path, users=20, days=5, clean=True, anomaly_days=2)
    parsed = read_lake(tmp_path)
    assert summary.malformed_lines == 0 and not parsed.found_malformed and not parsed.listed_malformed
    assert (tmp_path / "malformed.csv").read_text() == "file,line_number,kind\n"
    assert parsed.manifest["totals"]["malformed_lines"] == 0


def test_ground_truth_rows_are_real_elevated_counts(small: tuple[lake.LakeSummary, ParsedLake]) -> None:
    summary, parsed = small
    counts = parsed.counts()
    days = sorted({day for (_, day, _) in counts})
    rows = parsed.ground_truth
    assert len({(r["user_name"], int(r["hour"])) for r in rows}) == len(rows), "one anomaly per (user, hour)"
    assert collections.Counter(r["kind"] for r in rows).keys() == set(lake.ANOMALY_KINDS)
    assert all(r["day"] >= days[-SMALL["anomaly_days"]] for r in rows)
    assert [r.user_name for r in summary.ground_truth] == [r["user_name"] for r in rows]
    for r in rows:
        user, day, hour, magnitude = r["user_name"], r["day"], int(r["hour"]), float(r["magnitude"])
        other = np.array([counts[(user, d, hour)] for d in days if d != day], dtype=float)
        count = counts[(user, day, hour)]
        if r["kind"] in ("spike", "port_scan"):
            # The documented rule, exactly: mean + magnitude * max(std, 1) over the other days.
            assert count >= other.mean() + magnitude * max(other.std(), 1.0) - 1e-9, r
        else:
            assert count >= other.mean() + magnitude - 1e-9, r
        if r["kind"] == "dormant_wakeup":
            before = [d for d in days if d < day][-21:]
            assert sum(counts[(user, d, h)] for d in before for h in range(24)) == 0


def test_port_scan_touches_many_ports_or_hosts(small: tuple[lake.LakeSummary, ParsedLake]) -> None:
    _, parsed = small
    (scan,) = [r for r in parsed.ground_truth if r["kind"] == "port_scan"]
    flows = [f for f in parsed.all_flows()
             if f.user == scan["user_name"] and f.when.date().isoformat() == scan["day"]
             and f.when.hour == int(scan["hour"])]
    targets = {(f.dst, f.port) for f in flows}
    # At least magnitude extra flows (sigma >= 1), each to a distinct (host, port).
    assert len(targets) >= float(scan["magnitude"])
    assert sum(f.nbytes <= 78 for f in flows) >= float(scan["magnitude"])


def test_daily_and_weekly_rhythm(small: tuple[lake.LakeSummary, ParsedLake]) -> None:
    _, parsed = small
    flows = parsed.all_flows()
    per_day = collections.Counter(f.when.date() for f in flows)
    weekday = np.mean([n for d, n in per_day.items() if d.weekday() < 5])
    weekend = np.mean([n for d, n in per_day.items() if d.weekday() >= 5])
    assert weekend < 0.6 * weekday
    per_hour = collections.Counter(f.when.hour for f in flows)
    assert max(per_hour.values()) > 4 * min(per_hour.get(h, 0) for h in range(24))
    per_user = collections.Counter(f.user for f in flows)
    volumes = np.array([per_user.get(u, 0) for u in parsed_users(parsed)])
    assert volumes.max() > 10 * np.median(volumes)
    assert (volumes < 2 * SMALL["days"]).any(), "some users are quiet"


def parsed_users(parsed: ParsedLake) -> list[str]:
    return sorted({f.user for f in parsed.all_flows()} | {r["user_name"] for r in parsed.ground_truth})


def test_user_ids_style(tmp_path: Path) -> None:
    summary = lake.generate_lake(tmp_path, users=12, days=2, anomalies=[], user_style="ids")
    assert summary.users[:2] == ["u00000", "u00001"]


def test_parse_anomalies() -> None:
    assert lake.parse_anomalies("spike:10:2, port_scan:5") == [
        lake.AnomalySpec("spike", 10.0, 2), lake.AnomalySpec("port_scan", 5.0, 1)]
    assert lake.parse_anomalies("none") == []
    for bad in ("spike", "nope:1:1", "spike:-3:1", "spike:x:1"):
        with pytest.raises(ValueError):
            lake.parse_anomalies(bad)


def test_too_few_users_for_the_anomalies_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not enough eligible users"):
        lake.generate_lake(tmp_path, users=12, days=5, anomalies=[lake.AnomalySpec("dormant_wakeup", 5, 20)])


def test_cli_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    lake.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["lake", "generate", "--out", str(tmp_path), "--users", "15", "--days", "4",
                              "--seed", "1", "--parts-per-day", "2", "--anomalies", "spike:5:1", "--clean"])
    assert args.func(args) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "8 files" in out[0] and "0 malformed" in out[0] and str(tmp_path) in out[0]
    truth = (tmp_path / "ground_truth.csv").read_text().splitlines()
    assert truth[0] == "user_name,day,hour,kind,magnitude,incident" and len(truth) == 2 and truth[1].endswith(",spike,5,1")
