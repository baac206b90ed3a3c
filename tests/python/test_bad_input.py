"""Bad lake input against the real database: a fuzzed lake of valid lines mixed with malformed
content of many kinds goes through staging and the hourly counts.

The test writes every line itself and knows what staging must make of it (the oracle below):
each valid line is counted exactly once, each invalid line is in the quarantine with its
reason, a later verbatim copy of a valid line of the same day is `duplicate_line`, the
reconciliation test against an independent line count passes, a partition after the run date
waits for its date, and a file that cannot be read fails the build, naming the file (files read
in part: test_lake_reader_integrity).
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import connect, query

HEADER = "start_time,user_name,src_ip,dst_ip,dst_port,protocol,bytes"
DAYS = [dt.date(2017, 1, 10), dt.date(2017, 1, 11), dt.date(2017, 1, 12)]
RUN_DATE = DAYS[-1]
FUTURE_DAY = RUN_DATE + dt.timedelta(days=1)  # a partition already in the lake, after the run date
USERS = ["alice", "bob", "carol", "dave", "erin", "zoë", "svc_backup", "mallory.o"]
UTC = dt.timezone.utc


@dataclass
class Line:
    """One line as written, and what staging must make of it."""

    data: bytes
    reason: str | None  # None: a valid flow (or the header when line 1)
    flow: tuple[dt.date, int, str] | None = None  # (activity day, hour, user) when valid


@dataclass
class LakeFile:
    day: dt.date
    name: str
    lines: list[Line] = field(default_factory=list)
    crlf: bool = False
    gzip: bool = True
    raw: bytes | None = None  # written as is instead of the lines

    @property
    def path_in_lake(self) -> str:
        return f"flows/dt={self.day.isoformat()}/{self.name}"


def stamp(moment: dt.datetime, rng: random.Random) -> str:
    if rng.random() < 0.4:
        return str(int(moment.timestamp()))
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Fuzzer:
    """Random valid lines, and malformed lines of every kind with the reason staging gives."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def moment(self, day: dt.date) -> dt.datetime:
        start = dt.datetime.combine(day, dt.time(), UTC)
        return start + dt.timedelta(seconds=self.rng.randrange(86400))

    def fields(self, day: dt.date, user: str | None = None) -> tuple[list[str], dt.datetime]:
        r = self.rng
        when = self.moment(day)
        return [
            stamp(when, r),
            user or r.choice(USERS),
            f"10.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}",
            r.choice(["8.8.8.8", "1.1.1.1", "2001:db8::1", "93.184.216.34"]),
            str(r.choice([53, 80, 443, 22, 65535, 0])),
            r.choice(["tcp", "udp", "icmp"]),
            str(r.randrange(0, 10**9)),
        ], when

    def valid(self, day: dt.date) -> Line:
        values, when = self.fields(day)
        return Line(",".join(values).encode(), None, (when.date(), when.hour, values[1]))

    def malformed(self, day: dt.date) -> Line:
        r = self.rng
        values, _ = self.fields(day)
        kind = r.choice(list(MALFORMED))
        data, reason = MALFORMED[kind](values, day, r)
        return Line(data, reason)


def _with(values: list[str], index: int, value: str) -> bytes:
    changed = list(values)
    changed[index] = value
    return ",".join(changed).encode()


# kind -> (line bytes, reason); each takes the fields of a valid line and breaks one thing.
MALFORMED = {
    "extra_column": lambda v, d, r: (",".join(v + ["extra"]).encode(), "wrong_column_count"),
    "missing_column": lambda v, d, r: (",".join(v[:-1]).encode(), "wrong_column_count"),
    "invalid_utf8": lambda v, d, r: (_with(v, 1, "x").replace(b",x,", b",j\xe9r\xf4me,"), "invalid_utf8"),
    "truncated_utf8": lambda v, d, r: (_with(v, 1, "x").replace(b",x,", b",zo\xc3,"), "invalid_utf8"),
    "year_zero": lambda v, d, r: (_with(v, 0, "0000-01-01T00:00:00Z"), "bad_timestamp"),
    "hour_25": lambda v, d, r: (_with(v, 0, f"{d.isoformat()}T25:00:00Z"), "bad_timestamp"),
    "day_32": lambda v, d, r: (_with(v, 0, f"{d:%Y-%m}-32T01:00:00Z"), "bad_timestamp"),
    "epoch_11_digits": lambda v, d, r: (_with(v, 0, "99999999999"), "bad_timestamp"),
    "far_future": lambda v, d, r: (_with(v, 0, "2999-12-31T23:59:59Z"), "timestamp_outside_partition"),
    "days_after_partition": lambda v, d, r: (
        _with(v, 0, f"{d + dt.timedelta(days=3):%Y-%m-%d}T00:00:00Z"), "timestamp_outside_partition"),
    "days_before_partition": lambda v, d, r: (
        _with(v, 0, f"{d - dt.timedelta(days=2):%Y-%m-%d}T12:00:00Z"), "timestamp_outside_partition"),
    "negative_bytes": lambda v, d, r: (_with(v, 6, f"-{r.randrange(1, 10**6)}"), "negative_bytes"),
    "huge_bytes": lambda v, d, r: (_with(v, 6, "9" * r.choice([14, 19, 40])), "bytes_out_of_range"),
    "float_bytes": lambda v, d, r: (_with(v, 6, "1e5"), "non_numeric_bytes"),
    "empty_user": lambda v, d, r: (_with(v, 1, ""), "empty_user"),
    "blank_user": lambda v, d, r: (_with(v, 1, "   "), "empty_user"),
    "padded_user": lambda v, d, r: (_with(v, 1, " alice"), "bad_user_name"),
    "bad_ip": lambda v, d, r: (_with(v, 2, "10.0.0.256"), "bad_src_ip"),
    "bad_port": lambda v, d, r: (_with(v, 4, "65536"), "bad_dst_port"),
    "bad_protocol": lambda v, d, r: (_with(v, 5, "TCP;drop"), "bad_protocol"),
    "empty_line": lambda v, d, r: (b"", "empty_line"),
    "inner_cr": lambda v, d, r: (_with(v, 5, "tcp\rx"), "control_characters"),
    "tab": lambda v, d, r: (_with(v, 5, "tcp\tx"), "control_characters"),
    "repeated_header": lambda v, d, r: (HEADER.encode(), "bad_timestamp"),
}


def build_lake(root: Path, seed: int = 20170112) -> list[LakeFile]:
    fuzz = Fuzzer(seed)
    files: list[LakeFile] = []
    for day in [*DAYS, FUTURE_DAY]:
        for part in range(2):
            f = LakeFile(day, f"part-{part:04d}.csv" + (".gz" if part == 0 else ""), gzip=part == 0,
                         crlf=part == 1 and day == DAYS[1])
            f.lines.append(Line(HEADER.encode(), None))
            for _ in range(fuzz.rng.randrange(60, 90)):
                f.lines.append(fuzz.malformed(day) if fuzz.rng.random() < 0.35 else fuzz.valid(day))
            files.append(f)
        # Re-delivered records: verbatim copies of valid lines of the day, in the same file and
        # in another one; a copy of a malformed line keeps its own reason.
        first, second = files[-2], files[-1]
        valid = [line for line in first.lines[1:] if line.reason is None]
        bad = [line for line in first.lines[1:] if line.reason is not None]
        for source in fuzz.rng.sample(valid, 3):
            first.lines.append(Line(source.data, "duplicate_line"))
            second.lines.insert(fuzz.rng.randrange(1, len(second.lines)), Line(source.data, "duplicate_line"))
        second.lines.append(Line(bad[0].data, bad[0].reason))
    day = DAYS[1]
    # A file whose header is not the expected one: every line of it is distrusted.
    odd = LakeFile(day, "part-0002.csv.gz")
    odd.lines.append(Line(b"user_name,start_time,src_ip,dst_ip,dst_port,protocol,bytes", "unexpected_header"))
    for _ in range(5):
        odd.lines.append(Line(fuzz.valid(day).data, "file_has_unexpected_header"))
    files.append(odd)
    # A header-only file: an empty part, nothing to load (a zero-byte file is a broken delivery:
    # test_lake_reader_integrity).
    files.append(LakeFile(day, "part-0003.csv.gz", [Line(HEADER.encode(), None)]))
    # A last line without a newline.
    last = LakeFile(DAYS[2], "part-0006.csv", gzip=False)
    last.lines = [Line(HEADER.encode(), None), fuzz.valid(DAYS[2]), fuzz.valid(DAYS[2])]
    files.append(last)
    for f in files:
        path = root / f.path_in_lake
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o755)
        if f.raw is not None:
            data = f.raw
        else:
            data = (b"\r\n" if f.crlf else b"\n").join(line.data for line in f.lines)
            if f.name != "part-0006.csv":
                data += b"\r\n" if f.crlf else b"\n"
            if f.gzip:
                data = gzip.compress(data)
        path.write_bytes(data)
        path.chmod(0o644)
    return files


@pytest.fixture(scope="module")
def fuzzed(module_dbt_project, lake_dir_factory):
    project = module_dbt_project
    root = lake_dir_factory("bad-input")
    files = build_lake(root)
    lake_vars = {"lake_root": str(root), "run_date": RUN_DATE.isoformat()}
    project.run("run-operation", "stage_external_sources", vars=lake_vars)
    project.run("build", "--selector", "nightly_staging", vars=lake_vars)
    return project, root, files


def staged_lines(project) -> dict[tuple[str, str, int], tuple[str, str | None]]:
    return {
        (d.isoformat(), f, n): (status, reason)
        for d, f, n, status, reason in query(
            f"select dt, source_file, line_number, line_status, reject_reason "
            f"from {project.relation('base_lake__flow_lines')}")
    }


def expected_hourly(files: list[LakeFile], days: list[dt.date]) -> Counter:
    counts: Counter = Counter()
    for f in files:
        if f.day in days:
            for line in f.lines:
                if line.flow:
                    counts[line.flow] += 1
    return counts


def test_every_line_of_the_fuzzed_lake_gets_its_outcome(fuzzed):
    project, _, files = fuzzed
    kinds = {line.reason for f in files for line in f.lines if line.reason}
    assert len(kinds) >= 15, kinds
    got = staged_lines(project)
    wrong = {}
    for f in files:
        if f.day > RUN_DATE or f.raw is not None:
            continue
        for number, line in enumerate(f.lines, start=1):
            key = (f.day.isoformat(), f.name, number)
            reason = line.reason
            status = "rejected" if reason else ("header" if number == 1 else "valid")
            if got.get(key) != (status, reason):
                wrong[key] = (line.data, (status, reason), got.get(key))
    assert not wrong, f"{len(wrong)} lines staged wrongly, e.g. {list(wrong.items())[:5]}"


def test_every_invalid_line_is_quarantined_with_its_reason(fuzzed):
    project, _, files = fuzzed
    quarantine = {
        (d.isoformat(), f, n): (reason, text)
        for d, f, n, reason, text in query(
            f"select dt, source_file, line_number, reject_reason, rejected_line "
            f"from {project.relation('stg_flows__quarantine')}")
    }
    expected = {
        (f.day.isoformat(), f.name, number): line
        for f in files if f.day <= RUN_DATE
        for number, line in enumerate(f.lines, start=1) if line.reason
    }
    for key, line in expected.items():
        assert key in quarantine, (key, line)
        assert quarantine[key][0] == line.reason, (key, line, quarantine[key])
    # The quarantine holds the line's text (re-decoded when it is UTF-8) for what it rejects.
    dup = next(k for k, line in expected.items() if line.reason == "duplicate_line")
    assert quarantine[dup][1] == expected[dup].data.decode()
    others = {k: v for k, v in quarantine.items() if k not in expected}
    assert not others, others


def test_every_valid_line_is_counted_once(fuzzed):
    project, _, files = fuzzed
    got = Counter({
        (d, h, u): c for d, h, u, c in query(
            f"select activity_date, hour_of_day, user_name, flow_count from {project.relation('int_hourly_counts')}")
    })
    expected = expected_hourly(files, DAYS)
    assert got == expected
    (flows, distinct) = query(
        f"select count(*), count(distinct (dt, source_file, line_number)) from {project.relation('stg_flows')}")[0]
    assert flows == distinct == sum(expected.values())
    assert query(f"select count(*) from {project.relation('stg_flows')} where user_name = 'zoë'")[0][0] > 0


STAGED_COLUMNS = ("dt, source_file, line_number, line_status, reject_reason, rejected_line, started_at, "
                  "timestamp_format, activity_date, hour_of_day, user_name, src_ip, dst_ip, dst_port, protocol, bytes")


def test_the_readers_checks_give_the_rows_of_the_sql_checks(fuzzed):
    """The lake reader checks the common line itself and hands typed columns over; staging's SQL
    checks the rest. The same staging select over the same lines with every line left to the
    SQL checks (the reader's columns null) gives the same rows, reason for reason."""
    project, _, _ = fuzzed
    lake = f'"{project.schema}_lake".flows'
    (valid, rejected, left, total) = query(
        f"select count(*) filter (where line_check = 'valid'), count(*) filter (where line_check <> 'valid'), "
        f"count(*) filter (where line_check is null), count(*) from {lake} where dt <= %s", (RUN_DATE,))[0]
    assert valid > 0 and rejected > 0 and left > 0, (valid, rejected, left)  # both paths are exercised
    compiled = next((project.target_path / "compiled").glob("**/base/base_lake__flow_lines_shard_0.sql")).read_text()
    select, replaced = re.subn(r'"[^"]*"\."' + re.escape(project.schema) + r'_lake"\."flows"\s+where dt in \([^)]*\)',
                               "sql_only_lines", compiled)
    assert replaced == 1, compiled[:2000]
    with connect() as conn, conn.cursor() as cur:
        cur.execute(
            "create temporary table sql_only_lines as select dt, source_file, line_number, raw_line, read_error, "
            "null::text as line_check, null::bigint as started_at_epoch, null::text as timestamp_format, "
            "null::date as activity_date, null::integer as hour_of_day, null::text as user_name, null::inet as src_ip, "
            "null::inet as dst_ip, null::integer as dst_port, null::text as protocol, null::bigint as bytes "
            f"from {lake} where dt <= %s", (RUN_DATE,))
        cur.execute(f"select {STAGED_COLUMNS} from ({select}) as staged order by 1, 2, 3")
        sql_only = cur.fetchall()
    staged = query(f"select {STAGED_COLUMNS} from {project.relation('base_lake__flow_lines')} "
                   f"where dt <= %s order by 1, 2, 3", (RUN_DATE,))
    assert len(staged) == total
    assert sql_only == staged


def test_reconciliation_with_an_independent_line_count_passed(fuzzed):
    project, *_ = fuzzed
    results = {r["unique_id"].split(".")[2]: r["status"] for r in project.run_results()["results"]}
    reconcile = [status for name, status in results.items() if name.startswith("lines_reconcile_with_lake")]
    assert reconcile == ["pass"], results
    assert all(status in ("success", "pass") for status in results.values()), results


def test_a_future_partition_waits_for_its_date(fuzzed):
    project, root, files = fuzzed
    table = project.relation("base_lake__flow_lines")
    assert query(f"select count(*) from {table} where dt > %s", (RUN_DATE,)) == [(0,)]
    project.run("build", "--selector", "nightly_staging",
                vars={"lake_root": str(root), "run_date": FUTURE_DAY.isoformat()})
    future = [f for f in files if f.day == FUTURE_DAY]
    assert query(f"select count(*) from {table} where dt = %s", (FUTURE_DAY,)) == [
        (sum(len(f.lines) for f in future),)]
    (flows,) = query(f"select count(*) from {project.relation('stg_flows')} where dt = %s", (FUTURE_DAY,))[0]
    assert flows == sum(1 for f in future for line in f.lines if line.flow)


def test_a_file_that_cannot_be_read_at_all_fails_the_build_naming_it(dbt_project, lake_dir_factory):
    root = lake_dir_factory("unreadable")
    fuzz = Fuzzer(3)
    day = DAYS[0]
    folder = root / f"flows/dt={day.isoformat()}"
    folder.mkdir(parents=True)
    folder.chmod(0o755)
    good = folder / "part-0000.csv.gz"
    good.write_bytes(gzip.compress(b"\n".join([HEADER.encode()] + [fuzz.valid(day).data for _ in range(20)]) + b"\n"))
    not_gzip = folder / "part-0001.csv.gz"
    not_gzip.write_bytes(b"this is not gzip\n")
    locked = folder / "part-0002.csv"
    locked.write_bytes(HEADER.encode() + b"\n" + fuzz.valid(day).data + b"\n")
    for path in (good, not_gzip):
        path.chmod(0o644)
    locked.chmod(0o000)  # the server's OS user cannot read it (we are root: the test can)
    lake_vars = {"lake_root": str(root), "run_date": day.isoformat()}
    dbt_project.run("run-operation", "stage_external_sources", vars=lake_vars)
    failed = dbt_project.run("build", "--selector", "nightly_staging",
                             vars=lake_vars, check=False)
    assert failed.returncode != 0
    assert "lake files not read whole" in failed.stdout
    assert "dt=2017-01-10/part-0001.csv.gz" in failed.stdout and "dt=2017-01-10/part-0002.csv" in failed.stdout
    # Nothing of the failed load is visible.
    assert query("select to_regclass(%s)", (f"{dbt_project.schema}.base_lake__flow_lines",)) == [(None,)]
    # Once the delivery is fixed, the day loads.
    not_gzip.unlink()
    locked.chmod(0o644)
    dbt_project.run("build", "--selector", "nightly_staging", vars=lake_vars)
    assert query(f"select count(*) from {dbt_project.relation('stg_flows')}") == [(21,)]
    assert os.access(locked, os.R_OK)
