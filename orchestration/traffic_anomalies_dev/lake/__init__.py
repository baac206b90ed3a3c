"""A deterministic, realistic sample data lake of network-flow logs (development tooling).

The lake is what the rest of the project reads::

    OUT/flows/dt=YYYY-MM-DD/part-NNNN.csv.gz   gzip'd CSV, one flow per line
    OUT/ground_truth.csv                       user_name,day,hour,kind,magnitude,incident
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

Anomalies (see :class:`AnomalySpec`) are injected on top, in the last ``anomaly_days`` days of the lake, at most
one per (user, hour of day), and listed in ``ground_truth.csv``. A share of malformed lines is
added (unless ``clean``) and listed in ``malformed.csv``; malformed lines are *extra* lines, so the
valid lines of the lake are exactly the modelled flows.

Same arguments, same bytes: every random draw comes from a stream seeded by ``seed`` and the
position it is used for (day, part), gzip headers carry no file name and mtime 0, and files are
written in sorted order.

The modules, by concern: :mod:`.spec` (parameters, anomaly kinds, random streams), :mod:`.users`
(the users' behaviour and the counts of every cell), :mod:`.traffic` (the content of ordinary
flows), :mod:`.anomalies` (anomaly injection), :mod:`.files` (the files of the lake),
:mod:`.truth` (what was injected, and each cell's true expectation for evaluation),
:mod:`.generate` (:func:`generate_lake`), :mod:`.cli` (``traffic-anomalies lake generate``).
"""

from traffic_anomalies_dev.lake.cli import add_parser, main, run_generate
from traffic_anomalies_dev.lake.files import MalformedRow
from traffic_anomalies_dev.lake.generate import LakeSummary, generate_lake
from traffic_anomalies_dev.lake.spec import (
    ANOMALY_KINDS, DEFAULT_ANOMALIES, DEFAULT_ANOMALY_DAYS, DEFAULT_DAYS, DEFAULT_EPOCH_SHARE,
    DEFAULT_MALFORMED_RATE, DEFAULT_PARTS_PER_DAY, DEFAULT_SEED, DEFAULT_START, DEFAULT_USERS,
    GENERATOR_VERSION, HEADER, MALFORMED_KINDS, AnomalySpec, parse_anomalies,
)
from traffic_anomalies_dev.lake.truth import GroundTruthRow, LakeTruth, lake_truth
from traffic_anomalies_dev.lake.users import PROTOCOLS, ROLES

__all__ = [
    "ANOMALY_KINDS", "DEFAULT_ANOMALIES", "DEFAULT_ANOMALY_DAYS", "DEFAULT_DAYS", "DEFAULT_EPOCH_SHARE",
    "DEFAULT_MALFORMED_RATE", "DEFAULT_PARTS_PER_DAY", "DEFAULT_SEED", "DEFAULT_START", "DEFAULT_USERS",
    "GENERATOR_VERSION", "HEADER", "MALFORMED_KINDS", "PROTOCOLS", "ROLES", "AnomalySpec", "GroundTruthRow",
    "LakeSummary", "LakeTruth", "MalformedRow", "add_parser", "generate_lake", "lake_truth", "main",
    "parse_anomalies", "run_generate",
]
