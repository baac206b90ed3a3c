"""What a lake is made of: its parameters, the anomaly kinds and their strengths, the defaults.

Every random draw of the generator comes from ``np.random.default_rng([seed, STREAM, ...])``,
one stream per concern (the STREAM_* numbers below), so one concern can change without moving
the draws of another.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass

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
STREAM_USERS = 1
STREAM_COUNTS = 2
STREAM_PLACEMENT = 3
STREAM_FILE = 4
STREAM_FORMAT = 5
STREAM_DESTINATIONS = 6

SECONDS_PER_DAY = 86_400
EPOCH = dt.date(1970, 1, 1)




@dataclass(frozen=True)
class AnomalySpec:
    """``count`` incidents of ``kind``, each of strength ``magnitude``.

    Every incident raises the flow count of one user in one or more hours of one day to
    ``ceil(mu + magnitude * sigma)`` (and always by at least one flow), where ``mu`` and ``sigma``
    are the mean and (population) standard deviation of that user's count in that hour of day
    over all *other* days of the lake (not only of a detection window), ``sigma`` floored at 1 flow.
    Per kind:

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




@dataclass(frozen=True)
class LakeParams:
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


def as_date(value: str | dt.date) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


