"""The reader never half-loads a file: a lake file that is not read whole (truncated gzip, bad
CRC, zero bytes, a .gz that is not gzip, unreadable, changed while it was read) keeps its whole
day out of staging, the build fails naming the file with the reason on one line, the days
loaded before are untouched, and once the file is fixed the next build loads the day whole.

Decision: a zero-byte file (or a gzip of nothing) is an error, not an empty part. Every
delivery file starts with its header line, so a file without even that was cut off before
its first byte was flushed; a legitimately empty part is a file with the header alone, and it
loads (no flows).
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import itertools
import subprocess
import threading
from pathlib import Path

import pytest

from conftest import connect, query
from traffic_anomalies.macro_text import lake_reader_script

HEADER = b"start_time,user_name,src_ip,dst_ip,dst_port,protocol,bytes"
FIRST = dt.date(2017, 3, 1)
DAYS = [FIRST + dt.timedelta(days=i) for i in range(6)]


def flow_lines(day: dt.date, count: int, user: str = "alice") -> list[bytes]:
    return [
        f"{day.isoformat()}T{i % 24:02d}:{i % 60:02d}:00Z,{user},10.0.0.{i % 250 + 1},10.1.0.1,443,tcp,{100 + i}".encode()
        for i in range(count)
    ]


def file_bytes(day: dt.date, count: int, user: str = "alice") -> bytes:
    return b"\n".join([HEADER, *flow_lines(day, count, user)]) + b"\n"


def write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o755)
    path.write_bytes(data)
    path.chmod(mode)


def day_dir(root: Path, day: dt.date) -> Path:
    return root / "flows" / f"dt={day.isoformat()}"


def bad_crc(data: bytes) -> bytes:
    damaged = bytearray(gzip.compress(data, mtime=0))
    damaged[-8] ^= 0xFF  # the CRC32 of the trailer: every byte inflates, the check fails
    return bytes(damaged)


# The five broken deliveries, one per day after the first: (file name, bytes, mode, reason).
BROKEN = {
    DAYS[1]: ("part-0001.csv.gz", lambda d: gzip.compress(file_bytes(d, 3000), compresslevel=1, mtime=0)[:6000],
              0o644, "unexpected end of file"),
    DAYS[2]: ("part-0001.csv.gz", lambda d: bad_crc(file_bytes(d, 300)), 0o644, "crc error"),
    DAYS[3]: ("part-0001.csv", lambda d: b"", 0o644, "empty file: not even the header line"),
    DAYS[4]: ("part-0001.csv.gz", lambda d: file_bytes(d, 5), 0o644, "not in gzip format"),
    DAYS[5]: ("part-0001.csv", lambda d: file_bytes(d, 5), 0o000, "Permission denied"),
}
GOOD_LINES = 40  # flows in each day's good file, part-0000.csv.gz


def stage_and_build(project, root: Path, run_date: dt.date, check: bool = True):
    lake_vars = {"lake_root": str(root), "run_date": run_date.isoformat()}
    project.run("run-operation", "stage_external_sources", vars=lake_vars)
    # `run`: the refusal is the shard's post-hook, which runs without the tests (faster)
    return project.run("run", "--selector", "nightly_staging", vars=lake_vars, check=check)


def rows_per_day(project) -> dict[dt.date, int]:
    return dict(query(f"select dt, count(*) from {project.relation('base_lake__flow_lines')} group by dt"))


def flows_per_day(project) -> dict[dt.date, int]:
    return dict(query(f"select activity_date, sum(flow_count)::int from {project.relation('int_hourly_counts')} group by 1"))


def test_a_day_with_a_file_not_read_whole_is_refused_whole_and_loads_once_fixed(dbt_project, lake_dir_factory):
    root = lake_dir_factory("integrity")
    for day in DAYS:
        write(day_dir(root, day) / "part-0000.csv.gz", gzip.compress(file_bytes(day, GOOD_LINES)))
    stage_and_build(dbt_project, root, DAYS[0])
    before = (rows_per_day(dbt_project), flows_per_day(dbt_project))
    assert before[0] == {DAYS[0]: GOOD_LINES + 1}

    for day, (name, content, mode, _) in BROKEN.items():
        write(day_dir(root, day) / name, content(day), mode)
    failed = stage_and_build(dbt_project, root, DAYS[-1], check=False)
    assert failed.returncode != 0
    messages = [line for line in failed.stdout.splitlines() if "lake files not read whole" in line]
    assert messages, failed.stdout[-3000:]
    for day, (name, _, _, reason) in BROKEN.items():
        # the file and its reason, on one line
        named = [m for m in messages if f"dt={day.isoformat()}/{name} (" in m]
        assert named and reason in named[0].split(f"dt={day.isoformat()}/{name} (")[1].split(")")[0], (day, messages)
    # Nothing of the broken days was staged (not even their good file), the first day is intact.
    assert (rows_per_day(dbt_project), flows_per_day(dbt_project)) == before

    # Fixed deliveries: each broken file rewritten whole (the empty one as a header-only part).
    for day, (name, _, _, _) in BROKEN.items():
        path = day_dir(root, day) / name
        data = HEADER + b"\n" if day == DAYS[3] else file_bytes(day, 7, user="bob")
        write(path, gzip.compress(data) if name.endswith(".gz") else data)
    stage_and_build(dbt_project, root, DAYS[-1])
    expected_rows = {day: GOOD_LINES + 1 + (1 if day == DAYS[3] else 0 if day == DAYS[0] else 8) for day in DAYS}
    assert rows_per_day(dbt_project) == expected_rows
    assert flows_per_day(dbt_project) == {
        day: GOOD_LINES + (0 if day in (DAYS[0], DAYS[3]) else 7) for day in DAYS}
    assert query(f"select count(*) from {dbt_project.relation('stg_flows__quarantine')}") == [(0,)]


def test_a_file_that_changes_while_it_is_read_keeps_its_day_out(dbt_project, lake_dir_factory):
    root = lake_dir_factory("changing")
    day = DAYS[0]
    path = day_dir(root, day) / "part-0000.csv"
    write(path, file_bytes(day, 50_000))
    stop = threading.Event()

    def deliver_slowly() -> None:  # a delivery still being written while the build reads it
        with open(path, "ab") as out:
            for n in itertools.count():
                if stop.is_set():
                    break
                out.write(f"{day.isoformat()}T23:00:00Z,late,10.0.0.1,10.1.0.1,443,tcp,{n}\n".encode())
                out.flush()
                stop.wait(0.002)

    writer = threading.Thread(target=deliver_slowly)
    writer.start()
    try:
        failed = stage_and_build(dbt_project, root, day, check=False)
    finally:
        stop.set()
        writer.join()
    assert failed.returncode != 0
    line = next(line for line in failed.stdout.splitlines() if "lake files not read whole" in line)
    assert f"dt={day.isoformat()}/part-0000.csv (the file changed while it was read" in line
    assert query("select to_regclass(%s)", (f"{dbt_project.schema}.base_lake__flow_lines",)) == [(None,)]

    stage_and_build(dbt_project, root, day)  # the delivery is complete now: it loads whole
    lines = path.read_bytes().count(b"\n")
    assert rows_per_day(dbt_project) == {day: lines}
    assert flows_per_day(dbt_project) == {day: lines - 1}


def test_the_gpfdist_reader_reports_broken_files_as_the_file_fdw_reader_does(dbt_project, lake_dir_factory):
    """The one reader on both engines' paths: file_fdw runs it over the day's directory, gpfdist
    once per file (the script `traffic-anomalies gpfdist up` writes)."""
    root = lake_dir_factory("reader-paths")
    reader = root / "lake_reader.sh"  # beside flows/, outside what staging reads
    reader.write_text(lake_reader_script())
    for day, (name, content, mode, _) in BROKEN.items():
        write(day_dir(root, day) / "part-0000.csv.gz", gzip.compress(file_bytes(day, 3)))
        write(day_dir(root, day) / name, content(day), mode)
    dbt_project.run("run-operation", "stage_external_sources", vars={"lake_root": str(root)})
    columns = "dt, source_file, line_number, raw_line, read_error, line_check, started_at_epoch, timestamp_format, activity_date, hour_of_day, user_name, src_ip, dst_ip, dst_port, protocol, bytes"
    relation = f'"{dbt_project.schema}_lake".flows'
    # (not the unreadable file: the test runs as another OS user than the server, root reads it)
    for day in [d for d, (_, _, mode, _) in BROKEN.items() if mode]:
        files = sorted(day_dir(root, day).iterdir())
        out = b"".join(subprocess.run(["sh", str(reader), "lines", str(f)], capture_output=True, check=True).stdout
                       for f in files)
        with connect() as conn, conn.cursor() as cur:
            cur.execute(f"create temporary table reader_out as select {columns} from {relation} limit 0")
            cur.copy_expert("copy reader_out from stdin with (format text, encoding 'LATIN1')", io.BytesIO(out))
            cur.execute("select * from reader_out order by 1, 2, 3")
            got = cur.fetchall()
        expected = query(f"select {columns} from {relation} where dt = %s order by 1, 2, 3", (day,))
        assert got == expected, day
        assert expected[-1][3] is None and expected[-1][4], day  # the error row closes the file
