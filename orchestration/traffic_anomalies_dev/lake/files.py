"""Writing the lake: the lines of each file (with the malformed ones), gzip, the manifest."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import gzip
import io
import json
import multiprocessing
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from traffic_anomalies_dev.lake.anomalies import incident_flows
from traffic_anomalies_dev.lake.spec import (
    EPOCH, GENERATOR_VERSION, GZIP_LEVEL, HEADER, MALFORMED_KINDS, SECONDS_PER_DAY, STREAM_FILE, LakeParams,
)
from traffic_anomalies_dev.lake.traffic import Flows, baseline_flows
from traffic_anomalies_dev.lake.truth import GroundTruthRow
from traffic_anomalies_dev.lake.users import PROTOCOLS

if TYPE_CHECKING:
    from traffic_anomalies_dev.lake.generate import Plan


@dataclass(frozen=True)
class MalformedRow:
    """One malformed line: ``file`` relative to the lake root, 1-based ``line_number`` (header = 1)."""

    file: str
    line_number: int
    kind: str



def file_flows(rng: np.random.Generator, plan: Plan, d: int, part: int) -> Flows:
    users = plan.users_by_part[part]
    parts = [baseline_flows(rng, plan, d, users)]
    in_file = set(users.tolist())
    for incident in plan.incidents:
        if incident.day == d and incident.user in in_file:
            parts.append(incident_flows(rng, plan, incident))
    flows = Flows.concat(parts)
    return flows.take(np.lexsort((flows.user, flows.second)))



# --------------------------------------------------------------------------------------------
# Lines
# --------------------------------------------------------------------------------------------

_PORT_TEXT = np.array([str(p) for p in range(65536)], dtype=object)
_PROTOCOL_TEXT = np.array(PROTOCOLS, dtype=object)


@functools.lru_cache(maxsize=1)
def _clock_table() -> tuple[str, ...]:
    """'THH:MM:SSZ' for every second of a day."""
    return tuple(f"T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}Z" for s in range(SECONDS_PER_DAY))


@functools.lru_cache(maxsize=4)
def _iso_table(day: dt.date) -> np.ndarray:
    prefix = day.isoformat()
    return np.array([prefix + clock for clock in _clock_table()], dtype=object)


def _timestamps(flows: Flows, day: dt.date, epoch: bool) -> list[str]:
    if epoch:
        base = (day - EPOCH).days * SECONDS_PER_DAY
        return list(map(str, (flows.second + base).tolist()))
    return _iso_table(day)[flows.second].tolist()


def _field_columns(plan: Plan, flows: Flows, day: dt.date, epoch: bool) -> list[list[str]]:
    return [
        _timestamps(flows, day, epoch),
        plan.population.names[flows.user].tolist(),
        flows.src.tolist(),
        flows.dst.tolist(),
        _PORT_TEXT[flows.port].tolist(),
        _PROTOCOL_TEXT[flows.protocol].tolist(),
        list(map(str, flows.nbytes.tolist())),
    ]


# Malformed values. Every one is rejected by a strict reader: the timestamp is neither a valid
# ISO-8601 UTC instant nor all digits, the bytes are not a non-negative integer.
_BAD_TIMESTAMPS = ("2017-13-45T99:00:00Z", "yesterday", "", "2017-02-30T10:00:00Z", "N/A",
                   "12:03:04", "{day}T25:61:07Z", "14842x2584", "0000-00-00T00:00:00Z")
_NON_NUMERIC_BYTES = ("12kb", "NaN", "n/a", "", "-", "0x1f", "1.5MB", "null", "inf")
_EXTRA_FIELDS = ("extra", "-", "0", "tcp", "443")

# Bytes a garbage line is drawn from. Left out on purpose, so a garbage line stays one line for
# every reader and never ends or opens something it should not:
#   0x00 NUL        cannot be stored in a PostgreSQL text value; C-string tools truncate at it;
#   0x0A \n, 0x0D \r  would split the line (and break line numbers) or look like a CRLF ending;
#   0x0B, 0x0C, 0x1C-0x1E, 0x85, and 0xC2/0xE2 (which lead the UTF-8 forms of U+0085, U+2028,
#                   U+2029): line breaks for str.splitlines() and some Unicode-aware readers;
#   0x22 "          would open a CSV quoted field that swallows the following lines;
#   0x5C \          COPY text-format escape (and "\." on its own ends COPY input).
# Commas are kept (garbage may well split into fields). Every garbage line starts with a byte that
# is never valid in UTF-8 (0xC0, 0xC1, 0xF5-0xFF), so it is invalid UTF-8 and its first field is
# never a timestamp.
_GARBAGE_ALPHABET = np.array(
    [b for b in range(1, 256)
     if b not in (0x0A, 0x0D, 0x0B, 0x0C, 0x1C, 0x1D, 0x1E, 0x85, 0xC2, 0xE2, 0x22, 0x5C)],
    dtype=np.uint8,
)
_NEVER_UTF8 = np.array([0xC0, 0xC1, *range(0xF5, 0x100)], dtype=np.uint8)


def _malformed_line(rng: np.random.Generator, kind: str, fields: list[str], day: dt.date) -> str:
    """A broken variant of a plausible line; str from bytes via surrogateescape (see _encode)."""
    fields = list(fields)
    if kind == "bad_timestamp":
        fields[0] = str(rng.choice(_BAD_TIMESTAMPS)).format(day=day.isoformat())
    elif kind == "empty_user":
        fields[1] = ""
    elif kind == "non_numeric_bytes":
        fields[6] = str(rng.choice(_NON_NUMERIC_BYTES))
    elif kind == "negative_bytes":
        fields[6] = f"-{int(rng.integers(1, 2_000_000))}"
    elif kind == "wrong_column_count":
        if rng.random() < 0.5:
            keep = np.sort(rng.choice(7, size=int(rng.integers(1, 7)), replace=False))
            fields = [fields[i] for i in keep.tolist()]
        else:
            fields += [str(x) for x in rng.choice(_EXTRA_FIELDS, size=int(rng.integers(1, 3)))]
    elif kind == "garbage_bytes":
        raw = rng.choice(_GARBAGE_ALPHABET, size=int(rng.integers(8, 120)))
        raw[0] = rng.choice(_NEVER_UTF8)
        return raw.tobytes().decode("utf-8", "surrogateescape")
    return ",".join(fields)


def _insert_malformed(
    rng: np.random.Generator, lines: list[str], columns: list[list[str]], day: dt.date, rate: float
) -> list[tuple[int, str]]:
    """Insert malformed lines into ``lines`` in place; return (1-based line number, kind)."""
    n_valid = len(lines)
    n_bad = int(rng.binomial(n_valid, rate)) if rate > 0 and n_valid else 0
    if not n_bad:
        return []
    positions = np.sort(rng.choice(n_valid + n_bad, size=n_bad, replace=False))
    kinds = rng.choice(len(MALFORMED_KINDS), size=n_bad)
    templates = rng.integers(0, n_valid, size=n_bad)
    bad = []
    for position, k, t in zip(positions.tolist(), kinds.tolist(), templates.tolist()):
        template = [column[t] for column in columns]
        lines.insert(position, _malformed_line(rng, MALFORMED_KINDS[k], template, day))
        bad.append((position + 2, MALFORMED_KINDS[k]))  # +1 for 1-based, +1 for the header
    return bad


def _encode(lines: list[str]) -> bytes:
    # surrogateescape turns the garbage lines back into exactly the bytes they were made of.
    text = HEADER + "\n" + "\n".join(lines) + "\n" if lines else HEADER + "\n"
    return text.encode("utf-8", "surrogateescape")


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FileResult:
    relpath: str
    day: str
    part: int
    timestamp_format: str
    valid_lines: int
    malformed: tuple[MalformedRow, ...] = field(default=())


def _render_file(plan: Plan, d: int, part: int) -> tuple[bytes, _FileResult]:
    rng = np.random.default_rng([plan.params.seed, STREAM_FILE, d, part])
    day = plan.date(d)
    epoch = (d, part) in plan.epoch_files
    flows = file_flows(rng, plan, d, part)
    columns = _field_columns(plan, flows, day, epoch)
    lines = list(map(",".join, zip(*columns)))
    bad = _insert_malformed(rng, lines, columns, day, plan.params.malformed_rate)
    relpath = plan.relpath(d, part)
    result = _FileResult(
        relpath=relpath,
        day=day.isoformat(),
        part=part,
        timestamp_format="epoch" if epoch else "iso8601",
        valid_lines=len(flows),
        malformed=tuple(MalformedRow(relpath, n, kind) for n, kind in bad),
    )
    return _encode(lines), result


def _gzip(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=GZIP_LEVEL, mtime=0) as gz:
        gz.write(data)
    return buffer.getvalue()


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


_PLAN_FOR_WORKERS: Plan | None = None
_OUT_FOR_WORKERS: Path | None = None


def _write_one(task: tuple[int, int]) -> _FileResult:
    assert _PLAN_FOR_WORKERS is not None and _OUT_FOR_WORKERS is not None
    data, result = _render_file(_PLAN_FOR_WORKERS, *task)
    _write_atomically(_OUT_FOR_WORKERS / result.relpath, _gzip(data))
    return result


def _default_workers(plan: Plan) -> int:
    expected_lines = int(plan.counts.sum(dtype=np.int64))
    if expected_lines < 1_000_000 or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def write_flow_files(out: Path, plan: Plan, workers: int | None) -> list[_FileResult]:
    """Write every flow file (in parallel when asked; the bytes do not depend on it)."""
    global _PLAN_FOR_WORKERS, _OUT_FOR_WORKERS
    tasks = [(d, p) for d in range(plan.params.days) for p in range(plan.params.parts_per_day)]
    workers = _default_workers(plan) if workers is None else max(1, workers)
    _PLAN_FOR_WORKERS, _OUT_FOR_WORKERS = plan, out
    try:
        if workers == 1:
            return [_write_one(task) for task in tasks]
        # Forked workers inherit the plan (no pickling of the count cube).
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            return list(pool.imap(_write_one, tasks, chunksize=1))
    finally:
        _PLAN_FOR_WORKERS, _OUT_FOR_WORKERS = None, None


def clear_old_flow_files(out: Path) -> None:
    """Remove flow files of an earlier lake in ``out`` (only files this module writes)."""
    flows = out / "flows"
    if not flows.is_dir():
        return
    for path in sorted(flows.glob("dt=*/part-*.csv.gz*")):
        if path.is_file() and (path.name.endswith(".csv.gz") or path.name.endswith(".csv.gz.tmp")):
            path.unlink()
    for directory in sorted(flows.glob("dt=*")):
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    _write_atomically(path, buffer.getvalue().encode("utf-8"))


def fmt_number(x: float) -> str:
    return f"{x:g}"


def write_manifest(
    path: Path, params: LakeParams, plan: Plan, results: list[_FileResult], ground_truth: list[GroundTruthRow]
) -> None:
    files = [
        {
            "path": r.relpath,
            "day": r.day,
            "part": r.part,
            "timestamp_format": r.timestamp_format,
            "valid_lines": r.valid_lines,
            "malformed_lines": len(r.malformed),
            "lines": 1 + r.valid_lines + len(r.malformed),
        }
        for r in results
    ]
    malformed_by_kind = {k: 0 for k in MALFORMED_KINDS}
    for r in results:
        for row in r.malformed:
            malformed_by_kind[row.kind] += 1
    manifest = {
        "generator": "traffic_anomalies_dev.lake",
        "generator_version": GENERATOR_VERSION,
        "header": HEADER,
        "parameters": params.as_json(),
        "files": files,
        "totals": {
            "files": len(results),
            "users": plan.population.size,
            "days": params.days,
            "valid_lines": sum(r.valid_lines for r in results),
            "malformed_lines": sum(malformed_by_kind.values()),
            "malformed_by_kind": malformed_by_kind,
            "lines_with_headers": sum(f["lines"] for f in files),
            "epoch_files": sum(r.timestamp_format == "epoch" for r in results),
            "anomalies": len(plan.incidents),
            "ground_truth_rows": len(ground_truth),
        },
    }
    _write_atomically(path, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8"))

