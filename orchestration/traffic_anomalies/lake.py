"""A deterministic, realistic sample data lake of network-flow logs.

The lake is what the rest of the project reads::

    OUT/flows/dt=YYYY-MM-DD/part-NNNN.csv.gz   gzip'd CSV, one flow per line
    OUT/ground_truth.csv                       user_name,day,hour,kind,magnitude
    OUT/malformed.csv                          file,line_number,kind
    OUT/manifest.json                          parameters, per-file line counts, totals

Every flow file starts with the header ``start_time,user_name,src_ip,dst_ip,dst_port,protocol,bytes``
and uses ``\\n`` line endings. ``start_time`` is ISO-8601 UTC (``2017-01-12T12:03:04Z``) in most
files and epoch seconds (``1484222584``) in about a fifth of them, chosen per file. Every event in
partition ``dt`` happens on UTC day ``dt``. A file holds the users whose ``crc32(user_name)`` falls
in its part, sorted by time.

The traffic model, per user:

* a role (office, developer, admin, service account) that sets the mix of services
  (https, dns, smb, ssh, rdp, ...) and the daily rhythm: people work business hours in their own
  time zone (shifted, a little differently each day), service accounts run around the clock with a
  nightly cron burst;
* a weekly rhythm (weekends are quiet for people, not for service accounts);
* a log-normal volume, a few quiet users with only a few flows a week;
* day-to-day noise: a gamma day factor and gamma hour factors under a Poisson count (negative
  binomial), sick days and vacations.

Anomalies (see :class:`AnomalySpec`) are injected on top, in the last days of the window, at most
one per (user, hour of day), and listed in ``ground_truth.csv``. A share of malformed lines is
added (unless ``clean``) and listed in ``malformed.csv``; malformed lines are *extra* lines, so the
valid lines of the lake are exactly the modelled flows.

Same arguments, same bytes: every random draw comes from a stream seeded by ``seed`` and the
position it is used for (day, part), gzip headers carry no file name and mtime 0, and files are
written in sorted order.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import functools
import gzip
import io
import json
import math
import multiprocessing
import os
import sys
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

HEADER = "start_time,user_name,src_ip,dst_ip,dst_port,protocol,bytes"
GENERATOR_VERSION = 1

ANOMALY_KINDS: tuple[str, ...] = ("spike", "port_scan", "off_hours", "dormant_wakeup")
MALFORMED_KINDS: tuple[str, ...] = (
    "bad_timestamp",
    "empty_user",
    "wrong_column_count",
    "non_numeric_bytes",
    "garbage_bytes",
    "negative_bytes",
)

DEFAULT_USERS = 200
DEFAULT_DAYS = 35
DEFAULT_START = "2017-01-01"
DEFAULT_SEED = 42
DEFAULT_PARTS_PER_DAY = 4
DEFAULT_MALFORMED_RATE = 0.002
DEFAULT_EPOCH_SHARE = 0.2
DEFAULT_ANOMALY_DAYS = 7
GZIP_LEVEL = 1

# Independent random streams: np.random.default_rng([seed, STREAM, ...]).
_STREAM_USERS = 1
_STREAM_COUNTS = 2
_STREAM_PLACEMENT = 3
_STREAM_FILE = 4
_STREAM_FORMAT = 5
_STREAM_DESTINATIONS = 6

_SECONDS_PER_DAY = 86_400
_EPOCH = dt.date(1970, 1, 1)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnomalySpec:
    """``count`` incidents of ``kind``, each of strength ``magnitude``.

    Every incident raises the flow count of one user in one or more hours of one day to
    ``ceil(mu + magnitude * sigma)`` (and always by at least one flow), where ``mu`` and ``sigma``
    are the mean and (population) standard deviation of that user's count in that hour of day
    over all *other* days of the window, ``sigma`` floored at 1 flow. Per kind:

    * ``spike``: one (day, hour) in the user's working hours; the extra flows are a burst to one
      external host over https with large transfers (an exfiltration or sync gone wild).
    * ``port_scan``: one (day, hour) in working hours; the extra flows are short SYN-sized flows to
      many distinct ports of one host, or to one port of many hosts, within a few minutes.
    * ``off_hours``: 1-2 consecutive hours in which the user is normally silent. A silent hour has
      ``sigma`` close to 0, so ``sigma`` here is the user's at their busiest hour instead.
    * ``dormant_wakeup``: a quiet user, silent for the previous three weeks, is active for 6-9
      working hours of one day. The user's own ``sigma`` is close to 0, so ``sigma`` here is the
      median ``sigma`` of active users at that hour.

    ``ground_truth.csv`` gets one row per (user, day, hour) raised, ``magnitude`` as given.
    """

    kind: str
    magnitude: float
    count: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ANOMALY_KINDS:
            raise ValueError(f"unknown anomaly kind {self.kind!r}; expected one of {', '.join(ANOMALY_KINDS)}")
        if not math.isfinite(self.magnitude) or self.magnitude <= 0:
            raise ValueError(f"anomaly magnitude must be a positive number, got {self.magnitude!r}")
        if self.count < 0:
            raise ValueError(f"anomaly count must be >= 0, got {self.count!r}")


DEFAULT_ANOMALIES: tuple[AnomalySpec, ...] = (
    AnomalySpec("spike", 10, 2),
    AnomalySpec("spike", 5, 1),
    AnomalySpec("port_scan", 20, 1),
    AnomalySpec("off_hours", 10, 1),
    AnomalySpec("dormant_wakeup", 10, 1),
)


@dataclass(frozen=True)
class GroundTruthRow:
    """One injected anomalous (user, day, hour)."""

    user_name: str
    day: str
    hour: int
    kind: str
    magnitude: float


@dataclass(frozen=True)
class MalformedRow:
    """One malformed line: ``file`` relative to the lake root, 1-based ``line_number`` (header = 1)."""

    file: str
    line_number: int
    kind: str


@dataclass
class LakeSummary:
    """What :func:`generate_lake` wrote."""

    out_dir: Path
    files: list[Path]
    valid_lines: int
    malformed_lines: int
    incidents: int
    ground_truth: list[GroundTruthRow]
    malformed: list[MalformedRow]
    users: list[str]
    seconds: float = 0.0

    @property
    def flows_dir(self) -> Path:
        return self.out_dir / "flows"

    @property
    def ground_truth_path(self) -> Path:
        return self.out_dir / "ground_truth.csv"

    @property
    def malformed_path(self) -> Path:
        return self.out_dir / "malformed.csv"

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / "manifest.json"

    def one_line(self) -> str:
        return (
            f"lake: {len(self.files)} files, {self.valid_lines + self.malformed_lines} lines "
            f"({self.valid_lines} valid, {self.malformed_lines} malformed), "
            f"{self.incidents} anomalies ({len(self.ground_truth)} ground-truth rows), "
            f"{len(self.users)} users, {self.seconds:.1f}s -> {self.out_dir}"
        )


def parse_anomalies(text: str) -> list[AnomalySpec]:
    """Parse ``KIND:MAG[:COUNT],...`` (``none`` or an empty string: no anomalies)."""
    text = text.strip()
    if text.lower() in ("", "none"):
        return []
    specs = []
    for item in text.split(","):
        parts = item.strip().split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"bad anomaly spec {item!r}; expected KIND:MAGNITUDE[:COUNT]")
        try:
            magnitude = float(parts[1])
            count = int(parts[2]) if len(parts) == 3 else 1
        except ValueError as exc:
            raise ValueError(f"bad anomaly spec {item!r}: {exc}") from None
        specs.append(AnomalySpec(parts[0], magnitude, count))
    return specs


def generate_lake(
    out_dir: str | os.PathLike[str],
    users: int = DEFAULT_USERS,
    days: int = DEFAULT_DAYS,
    start: str | dt.date = DEFAULT_START,
    seed: int = DEFAULT_SEED,
    clean: bool = False,
    anomalies: Sequence[AnomalySpec] | None = None,
    malformed_rate: float = DEFAULT_MALFORMED_RATE,
    parts_per_day: int = DEFAULT_PARTS_PER_DAY,
    anomaly_days: int = DEFAULT_ANOMALY_DAYS,
    epoch_share: float = DEFAULT_EPOCH_SHARE,
    user_style: str = "names",
    workers: int | None = None,
) -> LakeSummary:
    """Write a sample lake to ``out_dir`` and return what was written.

    ``anomalies=None`` injects :data:`DEFAULT_ANOMALIES`; ``[]`` injects none. Anomalies fall in
    the last ``anomaly_days`` days. ``user_style`` is ``"names"`` (``jane.doe``, ``svc_backup``)
    or ``"ids"`` (``u00042``). ``workers`` (default: up to 4 processes for large lakes) does not
    change the output. Earlier ``flows/dt=*/part-*.csv.gz`` files in ``out_dir`` are removed.
    """
    started = time.perf_counter()
    params = _Params(
        users=users,
        days=days,
        start=_as_date(start),
        seed=seed,
        clean=clean,
        anomalies=tuple(DEFAULT_ANOMALIES if anomalies is None else anomalies),
        malformed_rate=0.0 if clean else malformed_rate,
        parts_per_day=parts_per_day,
        anomaly_days=min(anomaly_days, days),
        epoch_share=epoch_share,
        user_style=user_style,
    )
    params.validate()
    out = Path(out_dir)
    plan = _build_plan(params)
    _clear_old_flow_files(out)
    results = _write_flow_files(out, plan, workers)
    ground_truth = _ground_truth_rows(plan)
    malformed = [row for result in results for row in result.malformed]
    _write_csv(out / "ground_truth.csv", ("user_name", "day", "hour", "kind", "magnitude"),
               ((r.user_name, r.day, r.hour, r.kind, _fmt_number(r.magnitude)) for r in ground_truth))
    _write_csv(out / "malformed.csv", ("file", "line_number", "kind"),
               ((r.file, r.line_number, r.kind) for r in malformed))
    _write_manifest(out / "manifest.json", params, plan, results, ground_truth)
    return LakeSummary(
        out_dir=out,
        files=[out / r.relpath for r in results],
        valid_lines=sum(r.valid_lines for r in results),
        malformed_lines=len(malformed),
        incidents=len(plan.incidents),
        ground_truth=ground_truth,
        malformed=malformed,
        users=list(plan.population.names),
        seconds=time.perf_counter() - started,
    )


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Params:
    users: int
    days: int
    start: dt.date
    seed: int
    clean: bool
    anomalies: tuple[AnomalySpec, ...]
    malformed_rate: float
    parts_per_day: int
    anomaly_days: int
    epoch_share: float
    user_style: str

    def validate(self) -> None:
        if self.users < 1 or self.days < 1 or self.parts_per_day < 1:
            raise ValueError("users, days and parts_per_day must all be >= 1")
        if self.parts_per_day > 9999:
            raise ValueError("parts_per_day must be <= 9999")
        if self.seed < 0:
            raise ValueError("seed must be >= 0")
        if not 0.0 <= self.malformed_rate < 0.5:
            raise ValueError("malformed_rate must be in [0, 0.5)")
        if not 0.0 <= self.epoch_share <= 1.0:
            raise ValueError("epoch_share must be in [0, 1]")
        if self.anomaly_days < 1:
            raise ValueError("anomaly_days must be >= 1")
        if self.user_style not in ("names", "ids"):
            raise ValueError("user_style must be 'names' or 'ids'")
        for spec in self.anomalies:
            if not isinstance(spec, AnomalySpec):
                raise TypeError(f"anomalies must be AnomalySpec items, got {spec!r}")
        if any(s.count for s in self.anomalies) and self.days < 2:
            raise ValueError("anomalies need at least 2 days (their size is relative to the other days)")

    def as_json(self) -> dict[str, object]:
        data = asdict(self)
        data["start"] = self.start.isoformat()
        data["anomalies"] = [asdict(s) for s in self.anomalies]
        return data


def _as_date(value: str | dt.date) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


# --------------------------------------------------------------------------------------------
# Services and destinations
# --------------------------------------------------------------------------------------------

ROLES: tuple[str, ...] = ("office", "developer", "admin", "service")
_ROLE_SHARES = np.array([0.80, 0.10, 0.05, 0.05])
_SERVICE_ROLE = 3
_QUIET_SHARE = 0.05

PROTOCOLS: tuple[str, ...] = ("tcp", "udp", "icmp")
_TCP, _UDP, _ICMP = 0, 1, 2


@dataclass(frozen=True)
class _Service:
    port: int
    protocol: int
    pool: str
    weights: tuple[float, float, float, float]  # office, developer, admin, service
    bytes_median: float
    bytes_sigma: float
    heavy_tail: bool = False


_SERVICES: tuple[_Service, ...] = (
    _Service(443, _TCP, "web", (0.50, 0.42, 0.30, 0.45), 3_500, 1.7, True),
    _Service(443, _UDP, "web", (0.06, 0.05, 0.03, 0.00), 9_000, 1.5, True),
    _Service(80, _TCP, "web", (0.07, 0.06, 0.04, 0.10), 1_200, 1.4, True),
    _Service(8080, _TCP, "web", (0.005, 0.04, 0.01, 0.05), 2_500, 1.5),
    _Service(53, _UDP, "dns", (0.15, 0.13, 0.14, 0.15), 110, 0.35),
    _Service(53, _TCP, "dns", (0.005, 0.005, 0.01, 0.005), 600, 0.6),
    _Service(123, _UDP, "ntp", (0.01, 0.01, 0.01, 0.02), 90, 0.02),
    _Service(88, _TCP, "dc", (0.02, 0.02, 0.03, 0.01), 1_600, 0.4),
    _Service(389, _TCP, "dc", (0.02, 0.02, 0.05, 0.02), 2_200, 0.8),
    _Service(445, _TCP, "files", (0.06, 0.03, 0.08, 0.10), 25_000, 2.2),
    _Service(22, _TCP, "ssh", (0.003, 0.08, 0.12, 0.03), 6_000, 2.0),
    _Service(3389, _TCP, "rdp", (0.005, 0.01, 0.09, 0.00), 60_000, 1.6),
    _Service(993, _TCP, "mail", (0.04, 0.03, 0.02, 0.00), 8_000, 1.5),
    _Service(587, _TCP, "mail", (0.01, 0.005, 0.005, 0.02), 15_000, 1.8),
    _Service(5432, _TCP, "db", (0.0, 0.03, 0.02, 0.03), 12_000, 2.0),
    _Service(3306, _TCP, "db", (0.0, 0.02, 0.01, 0.02), 9_000, 2.0),
    _Service(137, _UDP, "lan", (0.01, 0.005, 0.01, 0.0), 78, 0.1),
    _Service(0, _ICMP, "lan", (0.005, 0.01, 0.03, 0.005), 84, 0.3),
)

# Plausible first octets of public addresses (no private, loopback, multicast or reserved ranges).
_PUBLIC_FIRST_OCTETS = np.array(
    [3, 8, 13, 18, 20, 23, 31, 34, 35, 37, 40, 46, 52, 54, 62, 64, 66, 69, 72, 74, 77, 78, 80, 81,
     82, 85, 87, 91, 93, 94, 95, 104, 107, 108, 140, 142, 143, 144, 151, 157, 162, 170, 173, 176,
     178, 184, 185, 188, 193, 194, 195, 198, 199, 204, 205, 206, 207, 208, 209, 212, 213, 216, 217]
)


@dataclass(frozen=True)
class _Destinations:
    """All destination addresses in one table; each pool is a slice with popularity weights."""

    table: np.ndarray  # object array of str
    offsets: dict[str, int]
    cumulative: dict[str, np.ndarray]


def _ip(a: int, b: int, c: int, d: int) -> str:
    return f"{a}.{b}.{c}.{d}"


def _random_public_ips(rng: np.random.Generator, n: int) -> list[str]:
    first = rng.choice(_PUBLIC_FIRST_OCTETS, size=n)
    rest = rng.integers(0, 256, size=(n, 2))
    last = rng.integers(1, 255, size=n)
    return [_ip(a, b, c, d) for a, (b, c), d in zip(first.tolist(), rest.tolist(), last.tolist())]


def _zipf_weights(n: int, exponent: float) -> np.ndarray:
    return 1.0 / np.arange(1, n + 1, dtype=float) ** exponent


def _build_destinations(seed: int) -> _Destinations:
    rng = np.random.default_rng([seed, _STREAM_DESTINATIONS])
    web = list(dict.fromkeys(_random_public_ips(rng, 40_000)))
    pools: dict[str, tuple[list[str], np.ndarray]] = {
        "web": (web, _zipf_weights(len(web), 1.05)),
        "dns": (["10.0.0.2", "10.0.0.3", "8.8.8.8", "1.1.1.1"], np.array([0.60, 0.37, 0.02, 0.01])),
        "ntp": (["10.0.0.5", "10.0.0.6"], np.array([0.5, 0.5])),
        "dc": ([_ip(10, 0, 1, h) for h in range(10, 14)], np.ones(4)),
        "files": ([_ip(10, 0, 2, h) for h in range(10, 41)], _zipf_weights(31, 0.8)),
        "ssh": ([_ip(10, 0, 3, h) for h in range(1, 121)], _zipf_weights(120, 1.0)),
        "rdp": ([_ip(10, 0, 5, h) for h in range(10, 61)], _zipf_weights(51, 0.9)),
        "mail": (["10.0.7.25", "10.0.7.26", "10.0.7.143"], np.array([0.45, 0.45, 0.10])),
        "db": ([_ip(10, 0, 6, h) for h in range(10, 31)], _zipf_weights(21, 0.9)),
        "lan": ([_ip(10, 0, s, h) for s in range(0, 8) for h in range(1, 33)], np.ones(256)),
    }
    table: list[str] = []
    offsets: dict[str, int] = {}
    cumulative: dict[str, np.ndarray] = {}
    for name, (addresses, weights) in pools.items():
        offsets[name] = len(table)
        table.extend(addresses)
        cum = np.cumsum(weights / weights.sum())
        cum[-1] = 1.0
        cumulative[name] = cum
    return _Destinations(np.array(table, dtype=object), offsets, cumulative)


# --------------------------------------------------------------------------------------------
# Users
# --------------------------------------------------------------------------------------------

_FIRST_NAMES = (
    "james mary john patricia robert jennifer michael linda william elizabeth david barbara richard "
    "susan joseph jessica thomas sarah charles karen christopher nancy daniel lisa matthew betty "
    "anthony margaret mark sandra donald ashley steven kimberly paul emily andrew donna joshua "
    "michelle kenneth carol kevin amanda brian dorothy george melissa timothy deborah ronald "
    "stephanie edward rebecca jason sharon jeffrey laura ryan cynthia jacob kathleen gary amy "
    "nicholas angela eric shirley jonathan anna stephen brenda larry pamela justin emma scott "
    "nicole brandon helen benjamin samantha samuel katherine frank christine gregory debra "
    "alexander rachel raymond carolyn patrick janet jack maria dennis heather jerry diane tyler "
    "julie aaron joyce jose victoria adam kelly nathan christina henry lauren zachary joan ahmed "
    "fatima wei li yuki hiroshi olga ivan sven ingrid pierre amelie luca giulia pablo lucia"
).split()
_LAST_NAMES = (
    "smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez "
    "gonzalez wilson anderson thomas taylor moore jackson martin lee perez thompson white harris "
    "sanchez clark ramirez lewis robinson walker young allen king wright scott torres nguyen hill "
    "flores green adams nelson baker hall rivera campbell mitchell carter roberts gomez phillips "
    "evans turner diaz parker cruz edwards collins reyes stewart morris morales murphy cook rogers "
    "gutierrez ortiz morgan cooper peterson bailey reed kelly howard ramos kim cox ward richardson "
    "watson brooks chavez wood james bennett gray mendoza ruiz hughes price alvarez castillo "
    "sanders patel myers long ross foster jimenez powell jenkins perry russell sullivan bell "
    "coleman butler henderson barnes gonzales fisher vasquez simmons romero jordan patterson "
    "alexander hamilton graham reynolds griffin wallace moreno west cole hayes bryant herrera "
    "gibson ellis tran medina aguilar stevens murray ford castro marshall owens harrison fernandez "
    "mcdonald woods washington kennedy wells vargas henry chen freeman webb tucker guzman burns "
    "crawford olson simpson porter hunter gordon mendez silva shaw snyder mason dixon munoz hunt "
    "hicks holmes palmer wagner black robertson boyd rose stone salazar fox warren mills meyer "
    "rice schmidt garza daniels ferguson nichols stephens soto weaver ryan gardner payne grant "
    "dunn kelley spencer hawkins arnold pierce hansen peters santos hart bradley knight elliott "
    "cunningham duncan armstrong hudson carroll lane riley andrews ray berry perkins hoffman "
    "johnston matthews pena richards willis carpenter lawrence sandoval mueller novak kowalski "
    "yamamoto tanaka ivanova petrov lindqvist dubois rossi bianchi"
).split()
_SERVICE_WORDS = (
    "backup jenkins monitoring deploy sync ci ldapsync reporting etl scanner proxy mailer "
    "patching inventory printer batch archive crm erp gitlab"
).split()

# Local-time daily curve of a person (relative flows per hour, midnight first).
_HUMAN_DAY = np.array(
    [0.010, 0.005, 0.004, 0.004, 0.004, 0.008, 0.04, 0.25, 0.75, 1.00, 1.00, 0.95,
     0.65, 0.90, 1.00, 0.95, 0.85, 0.60, 0.30, 0.15, 0.12, 0.10, 0.06, 0.03]
)
_EVENING_HOURS = np.arange(18, 24)
_NIGHT_HOURS = np.arange(0, 6)
# Time-zone-ish offsets of people (hours east of UTC) and how common they are.
_TZ_OFFSETS = np.array([0, 1, 2, -5, -8, 8, 5])
_TZ_SHARES = np.array([0.55, 0.15, 0.05, 0.12, 0.05, 0.04, 0.04])
# Monday..Friday relative volume of people.
_WEEKDAY_FACTORS = np.array([1.04, 1.02, 1.00, 0.98, 0.90])
_MEDIAN_WEEKDAY_FLOWS = 26.0


@dataclass(frozen=True)
class _Population:
    names: np.ndarray  # object array of str, index = user id
    role: np.ndarray  # int, index into ROLES
    quiet: np.ndarray  # bool
    level: np.ndarray  # expected flows on a working weekday
    profile: np.ndarray  # (U, 24) UTC-hour weights, each row sums to 1
    dow_factor: np.ndarray  # (U, 7) Monday..Sunday
    day_shape: np.ndarray  # gamma shape of the day factor
    hour_shape: np.ndarray  # gamma shape of the hour factors
    jitter: np.ndarray  # bool: daily rhythm shifts by up to an hour from day to day
    absent_days: np.ndarray  # (U, 2) vacation [first, last) day index relative to start
    src_ip: np.ndarray  # object array of str
    src_ip2: np.ndarray  # object array of str ('' when none)
    second_ip_share: np.ndarray
    service_cum: np.ndarray  # (U, S) cumulative service weights
    part: np.ndarray  # part index within a day

    @property
    def size(self) -> int:
        return len(self.names)


def _build_population(params: _Params) -> _Population:
    rng = np.random.default_rng([params.seed, _STREAM_USERS])
    n = params.users
    role = rng.choice(len(ROLES), size=n, p=_ROLE_SHARES)
    quiet = _pick_quiet(rng, role)
    names = _user_names(rng, role, params.user_style)
    level = _levels(rng, role, quiet)
    profile = _profiles(rng, role)
    return _Population(
        names=names,
        role=role,
        quiet=quiet,
        level=level,
        profile=profile,
        dow_factor=_dow_factors(rng, role),
        day_shape=np.where(role == _SERVICE_ROLE, 40.0, rng.lognormal(math.log(6.0), 0.4, n)),
        hour_shape=np.where(role == _SERVICE_ROLE, 20.0, rng.lognormal(math.log(3.0), 0.3, n)),
        jitter=role != _SERVICE_ROLE,
        absent_days=_vacations(rng, role),
        src_ip=_source_ips(rng, n, "10"),
        src_ip2=_second_ips(rng, role),
        second_ip_share=rng.uniform(0.15, 0.5, n),
        service_cum=_service_mixes(rng, role),
        part=np.array([zlib.crc32(name.encode()) % params.parts_per_day for name in names], dtype=np.int64),
    )


def _pick_quiet(rng: np.random.Generator, role: np.ndarray) -> np.ndarray:
    people = np.flatnonzero(role != _SERVICE_ROLE)
    n_quiet = int(round(_QUIET_SHARE * len(role)))
    if len(role) >= 10:
        n_quiet = max(1, n_quiet)
    n_quiet = min(n_quiet, max(0, len(people) - 1))
    quiet = np.zeros(len(role), dtype=bool)
    quiet[rng.choice(people, size=n_quiet, replace=False)] = True
    return quiet


def _user_names(rng: np.random.Generator, role: np.ndarray, style: str) -> np.ndarray:
    n = len(role)
    if style == "ids":
        width = max(5, len(str(n - 1)))
        return np.array([f"u{i:0{width}d}" for i in range(n)], dtype=object)
    first = rng.choice(len(_FIRST_NAMES), size=n)
    last = rng.choice(len(_LAST_NAMES), size=n)
    pattern = rng.choice(4, size=n, p=[0.6, 0.25, 0.1, 0.05])
    word = rng.choice(len(_SERVICE_WORDS), size=n)
    names: list[str] = []
    seen: set[str] = set()
    for i in range(n):
        f, l = _FIRST_NAMES[first[i]], _LAST_NAMES[last[i]]
        if role[i] == _SERVICE_ROLE:
            base = f"svc_{_SERVICE_WORDS[word[i]]}"
        else:
            base = (f"{f}.{l}", f"{f[0]}{l}", f"{f}_{l}", f"{f}.{l}{10 + i % 90}")[pattern[i]]
        name, k = base, 1
        while name in seen:
            k += 1
            name = f"{base}{k}"
        seen.add(name)
        names.append(name)
    return np.array(names, dtype=object)


def _levels(rng: np.random.Generator, role: np.ndarray, quiet: np.ndarray) -> np.ndarray:
    level = rng.lognormal(math.log(_MEDIAN_WEEKDAY_FLOWS), 1.1, len(role))
    level = np.where(role == _SERVICE_ROLE, level * 0.8, level)
    # Quiet users: a few flows a week.
    return np.where(quiet, rng.uniform(0.2, 1.0, len(role)), level)


def _profiles(rng: np.random.Generator, role: np.ndarray) -> np.ndarray:
    n = len(role)
    curves = np.tile(_HUMAN_DAY, (n, 1)) * rng.lognormal(0.0, 0.15, (n, 24))
    curves[:, _EVENING_HOURS] *= rng.lognormal(0.0, 0.6, (n, 1))
    curves[:, _NIGHT_HOURS] *= rng.choice([0.0, 0.3, 1.0, 3.0], size=(n, 1), p=[0.35, 0.3, 0.25, 0.1])
    tz = rng.choice(_TZ_OFFSETS, size=n, p=_TZ_SHARES) + rng.choice([-1, 0, 0, 0, 1], size=n)
    # Local hour h is UTC hour h - tz: roll each curve by -tz.
    utc_hours = (np.arange(24)[None, :] + tz[:, None]) % 24
    profiles = np.take_along_axis(curves, utc_hours, axis=1)
    # Service accounts: flat around the clock plus a nightly cron burst.
    services = np.flatnonzero(role == _SERVICE_ROLE)
    flat = 0.25 * rng.lognormal(0.0, 0.1, (len(services), 24))
    flat[np.arange(len(services)), rng.integers(0, 6, len(services))] += rng.uniform(1.5, 4.0, len(services))
    profiles[services] = flat
    return profiles / profiles.sum(axis=1, keepdims=True)


def _dow_factors(rng: np.random.Generator, role: np.ndarray) -> np.ndarray:
    n = len(role)
    weekend = rng.beta(1.5, 7.0, n)  # mean ~0.18: most people barely work weekends
    factors = np.empty((n, 7))
    factors[:, :5] = _WEEKDAY_FACTORS
    factors[:, 5] = weekend
    factors[:, 6] = weekend * 0.8
    factors[role == _SERVICE_ROLE] = 1.0
    return factors


def _vacations(rng: np.random.Generator, role: np.ndarray) -> np.ndarray:
    n = len(role)
    first = rng.integers(-30, 240, n)
    length = rng.integers(3, 11, n)
    absent = np.stack([first, first + length], axis=1)
    absent[role == _SERVICE_ROLE] = (-1, -1)
    return absent


def _source_ips(rng: np.random.Generator, n: int, net: str) -> np.ndarray:
    slot = rng.permutation(n)
    return np.array(
        [f"{net}.{20 + s // (240 * 256)}.{(s // 240) % 256}.{10 + s % 240}" for s in slot.tolist()],
        dtype=object,
    )


def _second_ips(rng: np.random.Generator, role: np.ndarray) -> np.ndarray:
    has_second = (rng.random(len(role)) < 0.12) & (role != _SERVICE_ROLE)
    second = np.full(len(role), "", dtype=object)
    for j, u in enumerate(np.flatnonzero(has_second).tolist()):
        second[u] = f"172.{16 + (j // (250 * 256)) % 16}.{(j // 250) % 256}.{2 + j % 250}"
    return second


def _service_mixes(rng: np.random.Generator, role: np.ndarray) -> np.ndarray:
    base = np.array([s.weights for s in _SERVICES]).T  # (roles, S)
    weights = base[role] * rng.gamma(2.0, 0.5, (len(role), len(_SERVICES)))
    weights /= weights.sum(axis=1, keepdims=True)
    cum = np.cumsum(weights, axis=1)
    cum[:, -1] = 1.0
    return cum


# --------------------------------------------------------------------------------------------
# Counts per (user, day, hour)
# --------------------------------------------------------------------------------------------


def _simulate_counts(pop: _Population, params: _Params) -> np.ndarray:
    """Baseline flow counts, shape (users, days, 24); day d depends only on (seed, d, users)."""
    counts = np.empty((pop.size, params.days, 24), dtype=np.int32)
    for d in range(params.days):
        counts[:, d, :] = _simulate_day(pop, params, d)
    return counts


def _simulate_day(pop: _Population, params: _Params, d: int) -> np.ndarray:
    rng = np.random.default_rng([params.seed, _STREAM_COUNTS, d])
    n = pop.size
    weekday = (params.start + dt.timedelta(days=d)).weekday()
    day_factor = rng.gamma(pop.day_shape, 1.0 / pop.day_shape)
    sick = (rng.random(n) < 0.015) & (weekday < 5) & pop.jitter
    vacation = (pop.absent_days[:, 0] <= d) & (d < pop.absent_days[:, 1])
    present = ~(sick | vacation)
    shift = rng.choice([-1, 0, 1], size=n, p=[0.15, 0.7, 0.15]) * pop.jitter
    hours = (np.arange(24)[None, :] - shift[:, None]) % 24
    profile = np.take_along_axis(pop.profile, hours, axis=1)
    hour_noise = rng.gamma(pop.hour_shape[:, None], 1.0 / pop.hour_shape[:, None], (n, 24))
    volume = pop.level * pop.dow_factor[:, weekday] * day_factor * present
    return rng.poisson(volume[:, None] * profile * hour_noise).astype(np.int32)


# --------------------------------------------------------------------------------------------
# Anomalies
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Incident:
    kind: str
    magnitude: float
    user: int
    day: int
    hours: tuple[int, ...]
    extra: tuple[int, ...] = ()  # flows added in each hour
    target_ip: str = ""  # spike / off_hours: the external host; port_scan: host or subnet prefix
    scan_port: int = 0  # port_scan: 0 = vertical (many ports of one host), else horizontal
    minute: int = 0  # start of the burst within the hour
    minutes: int = 60  # length of the burst


def _place_incidents(pop: _Population, counts: np.ndarray, params: _Params) -> list[_Incident]:
    """Choose user, day and hours of every incident; at most one incident per (user, hour)."""
    rng = np.random.default_rng([params.seed, _STREAM_PLACEMENT])
    taken: set[tuple[int, int]] = set()
    used_users: dict[int, int] = {}
    incidents: list[_Incident] = []
    first_day = params.days - params.anomaly_days
    for spec in params.anomalies:
        for _ in range(spec.count):
            incident = _place_one(rng, pop, spec, first_day, params.days, taken, used_users)
            incidents.append(incident)
            taken.update((incident.user, h) for h in incident.hours)
            used_users[incident.user] = used_users.get(incident.user, 0) + 1
    return incidents


def _eligible_users(pop: _Population, kind: str) -> np.ndarray:
    people = (pop.role != _SERVICE_ROLE) & ~pop.quiet
    if kind == "dormant_wakeup":
        return np.flatnonzero(pop.quiet)
    if kind == "off_hours":
        return np.flatnonzero(people & (_silent_hours_mask(pop).sum(axis=1) >= 2))
    return np.flatnonzero(people)


def _silent_hours_mask(pop: _Population) -> np.ndarray:
    """(U, 24): hours in which a user has under ~1 flow a month on weekdays."""
    return pop.level[:, None] * pop.profile < 0.03


def _place_one(
    rng: np.random.Generator,
    pop: _Population,
    spec: AnomalySpec,
    first_day: int,
    days: int,
    taken: set[tuple[int, int]],
    used_users: dict[int, int],
) -> _Incident:
    candidates = _eligible_users(pop, spec.kind)
    order = sorted(rng.permutation(candidates).tolist(), key=lambda u: used_users.get(u, 0))
    for user in order:
        hours = _incident_hours(rng, pop, spec.kind, user)
        if hours and not any((user, h) in taken for h in hours):
            day = int(rng.integers(first_day, days))
            return _with_burst_details(rng, spec, user, day, hours)
    raise ValueError(
        f"cannot place {spec.count} {spec.kind} anomalies among {pop.size} users: not enough "
        f"eligible users (at most one anomaly per user and hour of day); use more users"
    )


def _incident_hours(rng: np.random.Generator, pop: _Population, kind: str, user: int) -> tuple[int, ...]:
    profile = pop.profile[user]
    if kind in ("spike", "port_scan"):
        working = np.argsort(-profile, kind="stable")[:8]
        weights = profile[working] / profile[working].sum()
        return (int(rng.choice(working, p=weights)),)
    if kind == "off_hours":
        silent = _silent_hours_mask(pop)[user]
        if rng.random() < 0.5:
            starts = [h for h in range(23) if silent[h] and silent[h + 1]]
            if starts:
                h = int(rng.choice(starts))
                return (h, h + 1)
        return (int(rng.choice(np.flatnonzero(silent))),)
    # dormant_wakeup: a working day around the user's peak.
    length = int(rng.integers(6, 10))
    peak = int(np.argmax(np.convolve(np.concatenate([profile, profile]), np.ones(length), "valid")[:24]))
    first = min(max(0, peak), 24 - length)
    return tuple(range(first, first + length))


def _with_burst_details(
    rng: np.random.Generator, spec: AnomalySpec, user: int, day: int, hours: tuple[int, ...]
) -> _Incident:
    target_ip, scan_port, minutes = "", 0, 60
    if spec.kind in ("spike", "off_hours"):
        target_ip = _random_public_ips(rng, 1)[0]
        minutes = int(rng.integers(10, 45)) if spec.kind == "spike" else 60
    elif spec.kind == "port_scan":
        minutes = int(rng.integers(2, 12))
        if rng.random() < 0.5:
            target_ip = _ip(10, 0, int(rng.integers(1, 8)), int(rng.integers(1, 255)))
        else:
            scan_port = int(rng.choice([22, 445, 3389, 5985, 1433, 23]))
            target_ip = f"10.{int(rng.integers(20, 24))}"
    minute = int(rng.integers(0, 60 - minutes + 1)) if minutes < 60 else 0
    return _Incident(spec.kind, spec.magnitude, user, day, hours, (), target_ip, scan_port, minute, minutes)


def _apply_dormancy(counts: np.ndarray, incidents: Iterable[_Incident]) -> None:
    """A user who wakes up from dormancy has been silent for the three weeks before."""
    for incident in incidents:
        if incident.kind == "dormant_wakeup":
            counts[incident.user, max(0, incident.day - 21): incident.day, :] = 0


def _size_incidents(pop: _Population, counts: np.ndarray, incidents: list[_Incident]) -> list[_Incident]:
    """Set the extra flows of every incident hour from the baseline counts (see AnomalySpec)."""
    sized = []
    active = np.flatnonzero((pop.role != _SERVICE_ROLE) & ~pop.quiet)
    for incident in incidents:
        others = np.arange(counts.shape[1]) != incident.day
        history = counts[incident.user][others].astype(float)  # (other days, 24)
        mean, std = history.mean(axis=0), history.std(axis=0)
        extra = []
        for h in incident.hours:
            if incident.kind == "off_hours":
                sigma = std[int(np.argmax(mean))]
            elif incident.kind == "dormant_wakeup":
                sigma = float(np.median(counts[active, :, h][:, others].std(axis=1))) if len(active) else 1.0
            else:
                sigma = std[h]
            base = int(counts[incident.user, incident.day, h])
            target = math.ceil(mean[h] + incident.magnitude * max(float(sigma), 1.0) - 1e-9)
            extra.append(max(base + 1, target) - base)
        sized.append(_replace_extra(incident, tuple(extra)))
    return sized


def _replace_extra(incident: _Incident, extra: tuple[int, ...]) -> _Incident:
    return replace(incident, extra=extra)


# --------------------------------------------------------------------------------------------
# The plan: everything needed to write any file independently
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    params: _Params
    population: _Population
    destinations: _Destinations
    counts: np.ndarray
    incidents: list[_Incident]
    epoch_files: frozenset[tuple[int, int]]
    users_by_part: list[np.ndarray]

    def date(self, d: int) -> dt.date:
        return self.params.start + dt.timedelta(days=d)

    def relpath(self, d: int, part: int) -> str:
        return f"flows/dt={self.date(d).isoformat()}/part-{part:04d}.csv.gz"


def _build_plan(params: _Params) -> _Plan:
    pop = _build_population(params)
    counts = _simulate_counts(pop, params)
    incidents = _place_incidents(pop, counts, params)
    _apply_dormancy(counts, incidents)
    incidents = _size_incidents(pop, counts, incidents)
    return _Plan(
        params=params,
        population=pop,
        destinations=_build_destinations(params.seed),
        counts=counts,
        incidents=incidents,
        epoch_files=_choose_epoch_files(params),
        users_by_part=[np.flatnonzero(pop.part == p) for p in range(params.parts_per_day)],
    )


def _choose_epoch_files(params: _Params) -> frozenset[tuple[int, int]]:
    """Files whose timestamps are epoch seconds; both forms present whenever there are 2+ files."""
    rng = np.random.default_rng([params.seed, _STREAM_FORMAT])
    files = [(d, p) for d in range(params.days) for p in range(params.parts_per_day)]
    draws = rng.random(len(files))
    epoch = {f for f, r in zip(files, draws) if r < params.epoch_share}
    if len(files) >= 2 and 0.0 < params.epoch_share < 1.0:
        if not epoch:
            epoch.add(files[int(np.argmin(draws))])
        elif len(epoch) == len(files):
            epoch.discard(files[int(np.argmax(draws))])
    return frozenset(epoch)


def _ground_truth_rows(plan: _Plan) -> list[GroundTruthRow]:
    rows = [
        GroundTruthRow(plan.population.names[i.user], plan.date(i.day).isoformat(), h, i.kind, i.magnitude)
        for i in plan.incidents
        for h in i.hours
    ]
    return sorted(rows, key=lambda r: (r.day, r.hour, r.user_name, r.kind))


# --------------------------------------------------------------------------------------------
# Flows of one file
# --------------------------------------------------------------------------------------------


@dataclass
class _Flows:
    """Columns of a set of flows."""

    user: np.ndarray  # int64 user id
    second: np.ndarray  # int64 second of the day
    src: np.ndarray  # object (str)
    dst: np.ndarray  # object (str)
    port: np.ndarray  # int64
    protocol: np.ndarray  # int64 index into PROTOCOLS
    nbytes: np.ndarray  # int64

    @staticmethod
    def concat(parts: list[_Flows]) -> _Flows:
        return _Flows(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FLOW_FIELDS))

    def take(self, order: np.ndarray) -> _Flows:
        return _Flows(*(getattr(self, f)[order] for f in _FLOW_FIELDS))

    def __len__(self) -> int:
        return len(self.user)


_FLOW_FIELDS = ("user", "second", "src", "dst", "port", "protocol", "nbytes")
_SERVICE_PORT = np.array([s.port for s in _SERVICES])
_SERVICE_PROTOCOL = np.array([s.protocol for s in _SERVICES])
_SERVICE_POOL = np.array([s.pool for s in _SERVICES], dtype=object)
_SERVICE_MU = np.log(np.array([s.bytes_median for s in _SERVICES]))
_SERVICE_SIGMA = np.array([s.bytes_sigma for s in _SERVICES])
_SERVICE_HEAVY = np.array([s.heavy_tail for s in _SERVICES])
_MIN_BYTES = 28  # an IP header and an ICMP/UDP header
_MAX_BYTES = 20_000_000_000


def _baseline_flows(rng: np.random.Generator, plan: _Plan, d: int, users: np.ndarray) -> _Flows:
    cells = plan.counts[users, d, :].astype(np.int64)  # (n users, 24)
    per_user = cells.sum(axis=1)
    user = np.repeat(users, per_user)
    hour = np.repeat(np.tile(np.arange(24), len(users)), cells.ravel())
    second = hour * 3600 + rng.integers(0, 3600, len(user))
    return _user_traffic(rng, plan, user, second)


def _user_traffic(rng: np.random.Generator, plan: _Plan, user: np.ndarray, second: np.ndarray) -> _Flows:
    """Ordinary flows of the given users at the given seconds, drawn from each user's service mix."""
    pop = plan.population
    n = len(user)
    draws = rng.random(n)
    service = (draws[:, None] > pop.service_cum[user]).sum(axis=1)
    use_second = (rng.random(n) < pop.second_ip_share[user]) & (pop.src_ip2[user] != "")
    src = np.where(use_second, pop.src_ip2[user], pop.src_ip[user])
    return _Flows(
        user=user,
        second=second,
        src=src,
        dst=_destinations(rng, plan.destinations, _SERVICE_POOL[service]),
        port=_SERVICE_PORT[service],
        protocol=_SERVICE_PROTOCOL[service],
        nbytes=_service_bytes(rng, service),
    )


def _destinations(rng: np.random.Generator, dests: _Destinations, pools: np.ndarray) -> np.ndarray:
    index = np.empty(len(pools), dtype=np.int64)
    for name, cum in dests.cumulative.items():
        rows = np.flatnonzero(pools == name)
        if len(rows):
            index[rows] = dests.offsets[name] + np.searchsorted(cum, rng.random(len(rows)), side="right")
    return dests.table[index]


def _service_bytes(rng: np.random.Generator, service: np.ndarray) -> np.ndarray:
    size = np.exp(_SERVICE_MU[service] + _SERVICE_SIGMA[service] * rng.standard_normal(len(service)))
    download = _SERVICE_HEAVY[service] & (rng.random(len(service)) < 0.01)
    size[download] *= 1.0 + rng.pareto(1.2, int(download.sum())) * 50.0
    return np.clip(size, _MIN_BYTES, _MAX_BYTES).astype(np.int64)


def _incident_flows(rng: np.random.Generator, plan: _Plan, incident: _Incident) -> _Flows:
    parts = []
    for hour, extra in zip(incident.hours, incident.extra):
        start = hour * 3600 + incident.minute * 60
        second = start + np.sort(rng.integers(0, incident.minutes * 60, extra))
        user = np.full(extra, incident.user, dtype=np.int64)
        maker = _INCIDENT_MAKERS[incident.kind]
        parts.append(maker(rng, plan, incident, user, second))
    return _Flows.concat(parts)


def _spike_flows(rng: np.random.Generator, plan: _Plan, incident: _Incident,
                 user: np.ndarray, second: np.ndarray) -> _Flows:
    """Mostly large https uploads to one external host, the rest the user's usual traffic."""
    flows = _user_traffic(rng, plan, user, second)
    burst = rng.random(len(user)) < 0.7
    flows.dst[burst] = incident.target_ip
    flows.port[burst] = 443
    flows.protocol[burst] = _TCP
    flows.nbytes[burst] = np.clip(rng.lognormal(math.log(250_000), 1.0, int(burst.sum())), 1_000, None)
    return flows


def _port_scan_flows(rng: np.random.Generator, plan: _Plan, incident: _Incident,
                     user: np.ndarray, second: np.ndarray) -> _Flows:
    """SYN-sized flows to many ports of one host (vertical) or one port of many hosts."""
    n = len(user)
    flows = _user_traffic(rng, plan, user, second)
    if incident.scan_port == 0:
        low = rng.permutation(np.arange(1, 1025))
        high = rng.permutation(np.arange(1025, 65536))
        flows.port = np.resize(np.concatenate([low, high]), n)  # repeats only past 65535 flows
        flows.dst = np.full(n, incident.target_ip, dtype=object)
    else:
        host = np.resize(rng.permutation(254 * 256), n)
        flows.port = np.full(n, incident.scan_port, dtype=np.int64)
        flows.dst = np.array([f"{incident.target_ip}.{h // 254}.{1 + h % 254}" for h in host.tolist()], dtype=object)
    flows.protocol = np.where(rng.random(n) < 0.9, _TCP, _UDP)
    flows.nbytes = rng.choice([40, 44, 60, 78], size=n)
    return flows


def _off_hours_flows(rng: np.random.Generator, plan: _Plan, incident: _Incident,
                     user: np.ndarray, second: np.ndarray) -> _Flows:
    """Night-time remote access and file copies, and uploads to one external host."""
    flows = _user_traffic(rng, plan, user, second)
    n = len(user)
    choice = rng.choice(4, size=n, p=[0.3, 0.2, 0.2, 0.3])
    internal = {0: ("ssh", 22), 1: ("rdp", 3389), 2: ("files", 445)}
    for k, (pool, port) in internal.items():
        rows = np.flatnonzero(choice == k)
        flows.dst[rows] = _destinations(rng, plan.destinations, np.full(len(rows), pool, dtype=object))
        flows.port[rows] = port
    external = choice == 3
    flows.dst[external] = incident.target_ip
    flows.port[external] = 443
    flows.protocol[:] = _TCP
    flows.nbytes = np.clip(rng.lognormal(math.log(40_000), 1.5, n), _MIN_BYTES, _MAX_BYTES).astype(np.int64)
    return flows


def _dormant_flows(rng: np.random.Generator, plan: _Plan, incident: _Incident,
                   user: np.ndarray, second: np.ndarray) -> _Flows:
    """The user's usual mix, at volume."""
    return _user_traffic(rng, plan, user, second)


_INCIDENT_MAKERS = {
    "spike": _spike_flows,
    "port_scan": _port_scan_flows,
    "off_hours": _off_hours_flows,
    "dormant_wakeup": _dormant_flows,
}


def _file_flows(rng: np.random.Generator, plan: _Plan, d: int, part: int) -> _Flows:
    users = plan.users_by_part[part]
    parts = [_baseline_flows(rng, plan, d, users)]
    in_file = set(users.tolist())
    for incident in plan.incidents:
        if incident.day == d and incident.user in in_file:
            parts.append(_incident_flows(rng, plan, incident))
    flows = _Flows.concat(parts)
    return flows.take(np.lexsort((flows.user, flows.second)))


# --------------------------------------------------------------------------------------------
# Lines
# --------------------------------------------------------------------------------------------

_PORT_TEXT = np.array([str(p) for p in range(65536)], dtype=object)
_PROTOCOL_TEXT = np.array(PROTOCOLS, dtype=object)


@functools.lru_cache(maxsize=1)
def _clock_table() -> tuple[str, ...]:
    """'THH:MM:SSZ' for every second of a day."""
    return tuple(f"T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}Z" for s in range(_SECONDS_PER_DAY))


@functools.lru_cache(maxsize=4)
def _iso_table(day: dt.date) -> np.ndarray:
    prefix = day.isoformat()
    return np.array([prefix + clock for clock in _clock_table()], dtype=object)


def _timestamps(flows: _Flows, day: dt.date, epoch: bool) -> list[str]:
    if epoch:
        base = (day - _EPOCH).days * _SECONDS_PER_DAY
        return list(map(str, (flows.second + base).tolist()))
    return _iso_table(day)[flows.second].tolist()


def _field_columns(plan: _Plan, flows: _Flows, day: dt.date, epoch: bool) -> list[list[str]]:
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


def _render_file(plan: _Plan, d: int, part: int) -> tuple[bytes, _FileResult]:
    rng = np.random.default_rng([plan.params.seed, _STREAM_FILE, d, part])
    day = plan.date(d)
    epoch = (d, part) in plan.epoch_files
    flows = _file_flows(rng, plan, d, part)
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


_PLAN_FOR_WORKERS: _Plan | None = None
_OUT_FOR_WORKERS: Path | None = None


def _write_one(task: tuple[int, int]) -> _FileResult:
    assert _PLAN_FOR_WORKERS is not None and _OUT_FOR_WORKERS is not None
    data, result = _render_file(_PLAN_FOR_WORKERS, *task)
    _write_atomically(_OUT_FOR_WORKERS / result.relpath, _gzip(data))
    return result


def _default_workers(plan: _Plan) -> int:
    expected_lines = int(plan.counts.sum(dtype=np.int64))
    if expected_lines < 1_000_000 or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def _write_flow_files(out: Path, plan: _Plan, workers: int | None) -> list[_FileResult]:
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


def _clear_old_flow_files(out: Path) -> None:
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


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    _write_atomically(path, buffer.getvalue().encode("utf-8"))


def _fmt_number(x: float) -> str:
    return f"{x:g}"


def _write_manifest(
    path: Path, params: _Params, plan: _Plan, results: list[_FileResult], ground_truth: list[GroundTruthRow]
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
        "generator": "traffic_anomalies.lake",
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


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _anomalies_arg(text: str) -> list[AnomalySpec]:
    try:
        return parse_anomalies(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _date_arg(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``lake generate`` on a sub-command set; the handler is ``args.func``."""
    lake = subparsers.add_parser("lake", help="the sample data lake: generate")
    actions = lake.add_subparsers(dest="lake_action", required=True)
    gen = actions.add_parser(
        "generate",
        help="write a deterministic sample lake of network-flow logs",
        description="Write a deterministic sample lake: flows/dt=*/part-*.csv.gz, ground_truth.csv, "
        "malformed.csv, manifest.json.",
    )
    gen.add_argument("--out", required=True, type=Path, help="lake root directory")
    gen.add_argument("--users", type=int, default=DEFAULT_USERS, help=f"number of users (default {DEFAULT_USERS})")
    gen.add_argument("--days", type=int, default=DEFAULT_DAYS, help=f"number of days (default {DEFAULT_DAYS})")
    gen.add_argument("--start", type=_date_arg, default=_as_date(DEFAULT_START), help=f"first day, YYYY-MM-DD (default {DEFAULT_START})")
    gen.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    gen.add_argument("--clean", action="store_true", help="write no malformed lines")
    gen.add_argument("--parts-per-day", type=int, default=DEFAULT_PARTS_PER_DAY,
                     help=f"files per day (default {DEFAULT_PARTS_PER_DAY})")
    gen.add_argument("--anomalies", type=_anomalies_arg, default=None, metavar="KIND:MAG:COUNT,...",
                     help="anomalies to inject, e.g. spike:10:2,port_scan:20:1 ('none' for none; "
                     f"kinds: {', '.join(ANOMALY_KINDS)}); default: a handful of mixed ones")
    gen.add_argument("--malformed-rate", type=float, default=DEFAULT_MALFORMED_RATE,
                     help=f"share of extra malformed lines (default {DEFAULT_MALFORMED_RATE})")
    gen.add_argument("--anomaly-days", type=int, default=DEFAULT_ANOMALY_DAYS,
                     help=f"anomalies fall in the last N days (default {DEFAULT_ANOMALY_DAYS})")
    gen.add_argument("--user-style", choices=["names", "ids"], default="names",
                     help="user names like jane.doe (default) or u00042")
    gen.add_argument("--workers", type=int, default=None, help="processes (default: automatic)")
    gen.set_defaults(func=run_generate)
    return lake


def run_generate(args: argparse.Namespace) -> int:
    try:
        summary = generate_lake(
            args.out,
            users=args.users,
            days=args.days,
            start=args.start,
            seed=args.seed,
            clean=args.clean,
            anomalies=args.anomalies,
            malformed_rate=args.malformed_rate,
            parts_per_day=args.parts_per_day,
            anomaly_days=args.anomaly_days,
            user_style=args.user_style,
            workers=args.workers,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary.one_line())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="traffic-anomalies")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["lake", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
