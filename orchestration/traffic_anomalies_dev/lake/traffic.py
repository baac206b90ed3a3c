"""The content of ordinary flows: which service, source address, destination and size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from traffic_anomalies_dev.lake.users import SERVICES, Destinations

if TYPE_CHECKING:
    from traffic_anomalies_dev.lake.generate import Plan


@dataclass
class Flows:
    """Columns of a set of flows."""

    user: np.ndarray  # int64 user id
    second: np.ndarray  # int64 second of the day
    src: np.ndarray  # object (str)
    dst: np.ndarray  # object (str)
    port: np.ndarray  # int64
    protocol: np.ndarray  # int64 index into PROTOCOLS
    nbytes: np.ndarray  # int64

    @staticmethod
    def concat(parts: list[Flows]) -> Flows:
        return Flows(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FLOW_FIELDS))

    def take(self, order: np.ndarray) -> Flows:
        return Flows(*(getattr(self, f)[order] for f in _FLOW_FIELDS))

    def __len__(self) -> int:
        return len(self.user)


_FLOW_FIELDS = ("user", "second", "src", "dst", "port", "protocol", "nbytes")
_SERVICE_PORT = np.array([s.port for s in SERVICES])
_SERVICE_PROTOCOL = np.array([s.protocol for s in SERVICES])
_SERVICE_POOL = np.array([s.pool for s in SERVICES], dtype=object)
_SERVICE_MU = np.log(np.array([s.bytes_median for s in SERVICES]))
_SERVICE_SIGMA = np.array([s.bytes_sigma for s in SERVICES])
_SERVICE_HEAVY = np.array([s.heavy_tail for s in SERVICES])
MIN_BYTES = 28  # an IP header and an ICMP/UDP header
MAX_BYTES = 20_000_000_000


def baseline_flows(rng: np.random.Generator, plan: Plan, d: int, users: np.ndarray) -> Flows:
    cells = plan.counts[users, d, :].astype(np.int64)  # (n users, 24)
    per_user = cells.sum(axis=1)
    user = np.repeat(users, per_user)
    hour = np.repeat(np.tile(np.arange(24), len(users)), cells.ravel())
    second = hour * 3600 + rng.integers(0, 3600, len(user))
    return user_traffic(rng, plan, user, second)


def user_traffic(rng: np.random.Generator, plan: Plan, user: np.ndarray, second: np.ndarray) -> Flows:
    """Ordinary flows of the given users at the given seconds, drawn from each user's service mix."""
    pop = plan.population
    n = len(user)
    draws = rng.random(n)
    service = (draws[:, None] > pop.service_cum[user]).sum(axis=1)
    use_second = (rng.random(n) < pop.second_ip_share[user]) & (pop.src_ip2[user] != "")
    src = np.where(use_second, pop.src_ip2[user], pop.src_ip[user])
    return Flows(
        user=user,
        second=second,
        src=src,
        dst=pick_destinations(rng, plan.destinations, _SERVICE_POOL[service]),
        port=_SERVICE_PORT[service],
        protocol=_SERVICE_PROTOCOL[service],
        nbytes=_service_bytes(rng, service),
    )


def pick_destinations(rng: np.random.Generator, dests: Destinations, pools: np.ndarray) -> np.ndarray:
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
    return np.clip(size, MIN_BYTES, MAX_BYTES).astype(np.int64)

