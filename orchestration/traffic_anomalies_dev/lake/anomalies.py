"""Anomaly injection: which user, day and hours each incident takes, how many flows it adds
(see AnomalySpec), and what those flows look like."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from traffic_anomalies_dev.lake.spec import STREAM_PLACEMENT, AnomalySpec, LakeParams
from traffic_anomalies_dev.lake.traffic import MIN_BYTES, MAX_BYTES, Flows, pick_destinations, user_traffic
from traffic_anomalies_dev.lake.users import SERVICE_ROLE, TCP, UDP, Population, dotted_ip, random_public_ips

if TYPE_CHECKING:
    from traffic_anomalies_dev.lake.generate import Plan


@dataclass(frozen=True)
class Incident:
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


def place_incidents(pop: Population, counts: np.ndarray, params: LakeParams) -> list[Incident]:
    """Choose user, day and hours of every incident; at most one incident per (user, hour)."""
    rng = np.random.default_rng([params.seed, STREAM_PLACEMENT])
    taken: set[tuple[int, int]] = set()
    used_users: dict[int, int] = {}
    incidents: list[Incident] = []
    first_day = params.days - params.anomaly_days
    for spec in params.anomalies:
        for _ in range(spec.count):
            incident = _place_one(rng, pop, spec, first_day, params.days, taken, used_users)
            incidents.append(incident)
            taken.update((incident.user, h) for h in incident.hours)
            used_users[incident.user] = used_users.get(incident.user, 0) + 1
    return incidents


def _eligible_users(pop: Population, kind: str) -> np.ndarray:
    people = (pop.role != SERVICE_ROLE) & ~pop.quiet
    if kind == "dormant_wakeup":
        return np.flatnonzero(pop.quiet)
    if kind == "off_hours":
        return np.flatnonzero(people & (_silent_hours_mask(pop).sum(axis=1) >= 2))
    return np.flatnonzero(people)


def _silent_hours_mask(pop: Population) -> np.ndarray:
    """(U, 24): hours in which a user has under ~1 flow a month on weekdays."""
    return pop.level[:, None] * pop.profile < 0.03


def _place_one(
    rng: np.random.Generator,
    pop: Population,
    spec: AnomalySpec,
    first_day: int,
    days: int,
    taken: set[tuple[int, int]],
    used_users: dict[int, int],
) -> Incident:
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


def _incident_hours(rng: np.random.Generator, pop: Population, kind: str, user: int) -> tuple[int, ...]:
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
) -> Incident:
    target_ip, scan_port, minutes = "", 0, 60
    if spec.kind in ("spike", "off_hours"):
        target_ip = random_public_ips(rng, 1)[0]
        minutes = int(rng.integers(10, 45)) if spec.kind == "spike" else 60
    elif spec.kind == "port_scan":
        minutes = int(rng.integers(2, 12))
        if rng.random() < 0.5:
            target_ip = dotted_ip(10, 0, int(rng.integers(1, 8)), int(rng.integers(1, 255)))
        else:
            scan_port = int(rng.choice([22, 445, 3389, 5985, 1433, 23]))
            target_ip = f"10.{int(rng.integers(20, 24))}"
    minute = int(rng.integers(0, 60 - minutes + 1)) if minutes < 60 else 0
    return Incident(spec.kind, spec.magnitude, user, day, hours, (), target_ip, scan_port, minute, minutes)


def apply_dormancy(counts: np.ndarray, expected: np.ndarray, incidents: Iterable[Incident]) -> None:
    """A user who wakes up from dormancy has been silent for the three weeks before."""
    for incident in incidents:
        if incident.kind == "dormant_wakeup":
            counts[incident.user, max(0, incident.day - 21): incident.day, :] = 0
            expected[incident.user, max(0, incident.day - 21): incident.day, :] = 0.0


def size_incidents(pop: Population, counts: np.ndarray, incidents: list[Incident]) -> list[Incident]:
    """Set the extra flows of every incident hour from the baseline counts (see AnomalySpec)."""
    sized = []
    active = np.flatnonzero((pop.role != SERVICE_ROLE) & ~pop.quiet)
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


def _replace_extra(incident: Incident, extra: tuple[int, ...]) -> Incident:
    return replace(incident, extra=extra)




def incident_flows(rng: np.random.Generator, plan: Plan, incident: Incident) -> Flows:
    parts = []
    for hour, extra in zip(incident.hours, incident.extra):
        start = hour * 3600 + incident.minute * 60
        second = start + np.sort(rng.integers(0, incident.minutes * 60, extra))
        user = np.full(extra, incident.user, dtype=np.int64)
        maker = _INCIDENT_MAKERS[incident.kind]
        parts.append(maker(rng, plan, incident, user, second))
    return Flows.concat(parts)


def _spike_flows(rng: np.random.Generator, plan: Plan, incident: Incident,
                 user: np.ndarray, second: np.ndarray) -> Flows:
    """Mostly large https uploads to one external host, the rest the user's usual traffic."""
    flows = user_traffic(rng, plan, user, second)
    burst = rng.random(len(user)) < 0.7
    flows.dst[burst] = incident.target_ip
    flows.port[burst] = 443
    flows.protocol[burst] = TCP
    flows.nbytes[burst] = np.clip(rng.lognormal(math.log(250_000), 1.0, int(burst.sum())), 1_000, None)
    return flows


def _port_scan_flows(rng: np.random.Generator, plan: Plan, incident: Incident,
                     user: np.ndarray, second: np.ndarray) -> Flows:
    """SYN-sized flows to many ports of one host (vertical) or one port of many hosts."""
    n = len(user)
    flows = user_traffic(rng, plan, user, second)
    if incident.scan_port == 0:
        low = rng.permutation(np.arange(1, 1025))
        high = rng.permutation(np.arange(1025, 65536))
        flows.port = np.resize(np.concatenate([low, high]), n)  # repeats only past 65535 flows
        flows.dst = np.full(n, incident.target_ip, dtype=object)
    else:
        host = np.resize(rng.permutation(254 * 256), n)
        flows.port = np.full(n, incident.scan_port, dtype=np.int64)
        flows.dst = np.array([f"{incident.target_ip}.{h // 254}.{1 + h % 254}" for h in host.tolist()], dtype=object)
    flows.protocol = np.where(rng.random(n) < 0.9, TCP, UDP)
    flows.nbytes = rng.choice([40, 44, 60, 78], size=n)
    return flows


def _off_hours_flows(rng: np.random.Generator, plan: Plan, incident: Incident,
                     user: np.ndarray, second: np.ndarray) -> Flows:
    """Night-time remote access and file copies, and uploads to one external host."""
    flows = user_traffic(rng, plan, user, second)
    n = len(user)
    choice = rng.choice(4, size=n, p=[0.3, 0.2, 0.2, 0.3])
    internal = {0: ("ssh", 22), 1: ("rdp", 3389), 2: ("files", 445)}
    for k, (pool, port) in internal.items():
        rows = np.flatnonzero(choice == k)
        flows.dst[rows] = pick_destinations(rng, plan.destinations, np.full(len(rows), pool, dtype=object))
        flows.port[rows] = port
    external = choice == 3
    flows.dst[external] = incident.target_ip
    flows.port[external] = 443
    flows.protocol[:] = TCP
    flows.nbytes = np.clip(rng.lognormal(math.log(40_000), 1.5, n), MIN_BYTES, MAX_BYTES).astype(np.int64)
    return flows


def _dormant_flows(rng: np.random.Generator, plan: Plan, incident: Incident,
                   user: np.ndarray, second: np.ndarray) -> Flows:
    """The user's usual mix, at volume."""
    return user_traffic(rng, plan, user, second)


_INCIDENT_MAKERS = {
    "spike": _spike_flows,
    "port_scan": _port_scan_flows,
    "off_hours": _off_hours_flows,
    "dormant_wakeup": _dormant_flows,
}

