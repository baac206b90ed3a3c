"""The users and their behaviour: roles, services, destinations, daily and weekly rhythm, and
the flow counts of every (user, day, hour) with the mean each was drawn around."""

from __future__ import annotations

import datetime as dt
import math
import zlib
from dataclasses import dataclass

import numpy as np

from traffic_anomalies_dev.lake.spec import STREAM_COUNTS, STREAM_DESTINATIONS, STREAM_USERS, LakeParams

ROLES: tuple[str, ...] = ("office", "developer", "admin", "service")
_ROLE_SHARES = np.array([0.80, 0.10, 0.05, 0.05])
SERVICE_ROLE = 3
_QUIET_SHARE = 0.05

PROTOCOLS: tuple[str, ...] = ("tcp", "udp", "icmp")
TCP, UDP, ICMP = 0, 1, 2


@dataclass(frozen=True)
class _Service:
    port: int
    protocol: int
    pool: str
    weights: tuple[float, float, float, float]  # office, developer, admin, service
    bytes_median: float
    bytes_sigma: float
    heavy_tail: bool = False


SERVICES: tuple[_Service, ...] = (
    _Service(443, TCP, "web", (0.50, 0.42, 0.30, 0.45), 3_500, 1.7, True),
    _Service(443, UDP, "web", (0.06, 0.05, 0.03, 0.00), 9_000, 1.5, True),
    _Service(80, TCP, "web", (0.07, 0.06, 0.04, 0.10), 1_200, 1.4, True),
    _Service(8080, TCP, "web", (0.005, 0.04, 0.01, 0.05), 2_500, 1.5),
    _Service(53, UDP, "dns", (0.15, 0.13, 0.14, 0.15), 110, 0.35),
    _Service(53, TCP, "dns", (0.005, 0.005, 0.01, 0.005), 600, 0.6),
    _Service(123, UDP, "ntp", (0.01, 0.01, 0.01, 0.02), 90, 0.02),
    _Service(88, TCP, "dc", (0.02, 0.02, 0.03, 0.01), 1_600, 0.4),
    _Service(389, TCP, "dc", (0.02, 0.02, 0.05, 0.02), 2_200, 0.8),
    _Service(445, TCP, "files", (0.06, 0.03, 0.08, 0.10), 25_000, 2.2),
    _Service(22, TCP, "ssh", (0.003, 0.08, 0.12, 0.03), 6_000, 2.0),
    _Service(3389, TCP, "rdp", (0.005, 0.01, 0.09, 0.00), 60_000, 1.6),
    _Service(993, TCP, "mail", (0.04, 0.03, 0.02, 0.00), 8_000, 1.5),
    _Service(587, TCP, "mail", (0.01, 0.005, 0.005, 0.02), 15_000, 1.8),
    _Service(5432, TCP, "db", (0.0, 0.03, 0.02, 0.03), 12_000, 2.0),
    _Service(3306, TCP, "db", (0.0, 0.02, 0.01, 0.02), 9_000, 2.0),
    _Service(137, UDP, "lan", (0.01, 0.005, 0.01, 0.0), 78, 0.1),
    _Service(0, ICMP, "lan", (0.005, 0.01, 0.03, 0.005), 84, 0.3),
)

# Plausible first octets of public addresses (no private, loopback, multicast or reserved ranges).
_PUBLIC_FIRST_OCTETS = np.array(
    [3, 8, 13, 18, 20, 23, 31, 34, 35, 37, 40, 46, 52, 54, 62, 64, 66, 69, 72, 74, 77, 78, 80, 81,
     82, 85, 87, 91, 93, 94, 95, 104, 107, 108, 140, 142, 143, 144, 151, 157, 162, 170, 173, 176,
     178, 184, 185, 188, 193, 194, 195, 198, 199, 204, 205, 206, 207, 208, 209, 212, 213, 216, 217]
)


@dataclass(frozen=True)
class Destinations:
    """All destination addresses in one table; each pool is a slice with popularity weights."""

    table: np.ndarray  # object array of str
    offsets: dict[str, int]
    cumulative: dict[str, np.ndarray]


def dotted_ip(a: int, b: int, c: int, d: int) -> str:
    return f"{a}.{b}.{c}.{d}"


def random_public_ips(rng: np.random.Generator, n: int) -> list[str]:
    first = rng.choice(_PUBLIC_FIRST_OCTETS, size=n)
    rest = rng.integers(0, 256, size=(n, 2))
    last = rng.integers(1, 255, size=n)
    return [dotted_ip(a, b, c, d) for a, (b, c), d in zip(first.tolist(), rest.tolist(), last.tolist())]


def _zipf_weights(n: int, exponent: float) -> np.ndarray:
    return 1.0 / np.arange(1, n + 1, dtype=float) ** exponent


def build_destinations(seed: int) -> Destinations:
    rng = np.random.default_rng([seed, STREAM_DESTINATIONS])
    web = list(dict.fromkeys(random_public_ips(rng, 40_000)))
    pools: dict[str, tuple[list[str], np.ndarray]] = {
        "web": (web, _zipf_weights(len(web), 1.05)),
        "dns": (["10.0.0.2", "10.0.0.3", "8.8.8.8", "1.1.1.1"], np.array([0.60, 0.37, 0.02, 0.01])),
        "ntp": (["10.0.0.5", "10.0.0.6"], np.array([0.5, 0.5])),
        "dc": ([dotted_ip(10, 0, 1, h) for h in range(10, 14)], np.ones(4)),
        "files": ([dotted_ip(10, 0, 2, h) for h in range(10, 41)], _zipf_weights(31, 0.8)),
        "ssh": ([dotted_ip(10, 0, 3, h) for h in range(1, 121)], _zipf_weights(120, 1.0)),
        "rdp": ([dotted_ip(10, 0, 5, h) for h in range(10, 61)], _zipf_weights(51, 0.9)),
        "mail": (["10.0.7.25", "10.0.7.26", "10.0.7.143"], np.array([0.45, 0.45, 0.10])),
        "db": ([dotted_ip(10, 0, 6, h) for h in range(10, 31)], _zipf_weights(21, 0.9)),
        "lan": ([dotted_ip(10, 0, s, h) for s in range(0, 8) for h in range(1, 33)], np.ones(256)),
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
    return Destinations(np.array(table, dtype=object), offsets, cumulative)


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
class Population:
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


def build_population(params: LakeParams) -> Population:
    rng = np.random.default_rng([params.seed, STREAM_USERS])
    n = params.users
    role = rng.choice(len(ROLES), size=n, p=_ROLE_SHARES)
    quiet = _pick_quiet(rng, role)
    names = _user_names(rng, role, params.user_style)
    level = _levels(rng, role, quiet)
    profile = _profiles(rng, role)
    return Population(
        names=names,
        role=role,
        quiet=quiet,
        level=level,
        profile=profile,
        dow_factor=_dow_factors(rng, role),
        day_shape=np.where(role == SERVICE_ROLE, 40.0, rng.lognormal(math.log(6.0), 0.4, n)),
        hour_shape=np.where(role == SERVICE_ROLE, 20.0, rng.lognormal(math.log(3.0), 0.3, n)),
        jitter=role != SERVICE_ROLE,
        absent_days=_vacations(rng, role),
        src_ip=_source_ips(rng, n, "10"),
        src_ip2=_second_ips(rng, role),
        second_ip_share=rng.uniform(0.15, 0.5, n),
        service_cum=_service_mixes(rng, role),
        part=np.array([zlib.crc32(name.encode()) % params.parts_per_day for name in names], dtype=np.int64),
    )


def _pick_quiet(rng: np.random.Generator, role: np.ndarray) -> np.ndarray:
    people = np.flatnonzero(role != SERVICE_ROLE)
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
        if role[i] == SERVICE_ROLE:
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
    level = np.where(role == SERVICE_ROLE, level * 0.8, level)
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
    services = np.flatnonzero(role == SERVICE_ROLE)
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
    factors[role == SERVICE_ROLE] = 1.0
    return factors


def _vacations(rng: np.random.Generator, role: np.ndarray) -> np.ndarray:
    n = len(role)
    first = rng.integers(-30, 240, n)
    length = rng.integers(3, 11, n)
    absent = np.stack([first, first + length], axis=1)
    absent[role == SERVICE_ROLE] = (-1, -1)
    return absent


def _source_ips(rng: np.random.Generator, n: int, net: str) -> np.ndarray:
    slot = rng.permutation(n)
    return np.array(
        [f"{net}.{20 + s // (240 * 256)}.{(s // 240) % 256}.{10 + s % 240}" for s in slot.tolist()],
        dtype=object,
    )


def _second_ips(rng: np.random.Generator, role: np.ndarray) -> np.ndarray:
    has_second = (rng.random(len(role)) < 0.12) & (role != SERVICE_ROLE)
    second = np.full(len(role), "", dtype=object)
    for j, u in enumerate(np.flatnonzero(has_second).tolist()):
        second[u] = f"172.{16 + (j // (250 * 256)) % 16}.{(j // 250) % 256}.{2 + j % 250}"
    return second


def _service_mixes(rng: np.random.Generator, role: np.ndarray) -> np.ndarray:
    base = np.array([s.weights for s in SERVICES]).T  # (roles, S)
    weights = base[role] * rng.gamma(2.0, 0.5, (len(role), len(SERVICES)))
    weights /= weights.sum(axis=1, keepdims=True)
    cum = np.cumsum(weights, axis=1)
    cum[:, -1] = 1.0
    return cum


# --------------------------------------------------------------------------------------------
# Counts per (user, day, hour)
# --------------------------------------------------------------------------------------------


def simulate_counts(pop: Population, params: LakeParams) -> tuple[np.ndarray, np.ndarray]:
    """Baseline flow counts, shape (users, days, 24), and the mean each count was drawn around.

    Day d depends only on (seed, d, users). Given its mean, a count is negative binomial with the
    user's ``hour_shape`` (a Poisson of a gamma-distributed rate): the mean is what a perfect
    detector would expect of the cell.
    """
    counts = np.empty((pop.size, params.days, 24), dtype=np.int32)
    expected = np.empty((pop.size, params.days, 24), dtype=float)
    for d in range(params.days):
        counts[:, d, :], expected[:, d, :] = _simulate_day(pop, params, d)
    return counts, expected


def _simulate_day(pop: Population, params: LakeParams, d: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([params.seed, STREAM_COUNTS, d])
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
    mean = volume[:, None] * profile
    return rng.poisson(mean * hour_noise).astype(np.int32), mean
