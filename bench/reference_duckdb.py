"""The nightly pipeline with DuckDB + numpy: the second reference the database run is timed against.

The lake is read with DuckDB's CSV reader (every file of the run's days in one multi-threaded
scan, seven text columns, no quoting), the line rules of base_lake__flow_lines / stg_flows are
applied in DuckDB SQL and the flows are counted per (UTC day, hour of day, user) like
int_hourly_counts. The rest is bench/reference_pandas.py's, unchanged: the same PCA window,
the same numpy PCA per hour, the same outliers and the same output files, so that
bench_reference.compare reads either.

Where DuckDB's reader differs from the lake reader, the rule is applied around it:
- the header is checked by reading each file's first line (a file whose first line is not the
  expected header is distrusted whole and not read);
- a line the CSV reader cannot make seven fields of (wrong field count, invalid UTF-8) is
  skipped (`ignore_errors`): such a line is rejected by the line rules anyway;
- DuckDB's reader takes LF and CRLF line ends (like the lake reader) but refuses a file with a
  bare CR anywhere (the lake reader makes such a line `control_characters`): the run stops
  with that message; generated lakes have none.
A file that is not read whole fails the run (the database refuses such a day too).

Standalone: `python bench/reference_duckdb.py --lake DIR --run-date D --out DIR`, the options
and outputs of reference_pandas.py.
"""

from __future__ import annotations

import datetime as dt
import gzip
import sys
from pathlib import Path

import duckdb
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference_pandas as ref  # noqa: E402  (the shared PCA, outliers and outputs)

_EPOCH = dt.date(1970, 1, 1)
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"({_OCTET}\.){{3}}{_OCTET}"
_IPV6_FULL = r"([0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}"
_IPV6_SHORT = r"(([0-9a-fA-F]{1,4}:){0,6}[0-9a-fA-F]{1,4})?::(([0-9a-fA-F]{1,4}:){0,6}[0-9a-fA-F]{1,4})?"


def _first_line(path: Path) -> bytes:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:
        return f.readline().rstrip(b"\n").removesuffix(b"\r")


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _is_ip(column: str) -> str:
    return (f"(regexp_full_match({column}, '{_IPV4}') or regexp_full_match({column}, '{_IPV6_FULL}') "
            f"or (regexp_full_match({column}, '{_IPV6_SHORT}') "
            f"and length({column}) - length(replace({column}, ':', '')) <= 7))")


def counts_query(files: list[tuple[dt.date, Path]]) -> str:
    """The DuckDB select of int_hourly_counts over the given (partition day, file) pairs."""
    partitions = ", ".join(f"({_sql_string(str(p))}, {(day - _EPOCH).days})" for day, p in files)
    paths = ", ".join(_sql_string(str(p)) for _, p in files)
    columns = ", ".join(f"'{c}': 'VARCHAR'" for c in ref.COLUMNS)
    return f"""
with
partitions (filename, part_day) as (values {partitions}),
lines as (
    select filename, start_time, user_name, src_ip, dst_ip, dst_port, protocol, bytes
    from read_csv([{paths}], columns = {{{columns}}}, header = true, delim = ',', quote = '', escape = '',
                  auto_detect = false, ignore_errors = true, null_padding = false, strict_mode = true,
                  filename = true)
),
typed as (
    select
        partitions.part_day,
        concat_ws(',', start_time, user_name, src_ip, dst_ip, dst_port, protocol, bytes) as line,
        user_name, src_ip, dst_ip, dst_port, protocol, bytes,
        case
            when regexp_full_match(start_time, '{ref.ISO_RE.pattern}')
                then epoch(try_cast(replace(rtrim(start_time, 'Z'), 'T', ' ') as timestamp))
            when regexp_full_match(start_time, '{ref.EPOCH_RE.pattern}')
                then cast(start_time as double)
        end as started
    from lines
    inner join partitions using (filename)
),
flows as (
    select distinct part_day, line, user_name,
           cast(floor(started / 86400) as integer) as day,
           cast(floor((started - floor(started / 86400) * 86400) / 3600) as integer) as hour
    from typed
    where not regexp_matches(line, '[\\x00-\\x1f\\x7f]')
      and started >= (part_day - 1) * 86400 and started < (part_day + 2) * 86400
      and trim(user_name, ' ') <> '' and user_name = trim(user_name, ' ') and length(user_name) <= 128
      and {_is_ip('src_ip')} and {_is_ip('dst_ip')}
      and regexp_full_match(dst_port, '[0-9]{{1,5}}') and cast(dst_port as integer) <= 65535
      and regexp_full_match(protocol, '[a-z0-9-]{{1,16}}')
      and regexp_full_match(bytes, '[0-9]{{1,13}}')
)
select day, hour, user_name, count(*) as flow_count
from flows
group by day, hour, user_name
"""


def hourly_counts(lake: Path, run_date: dt.date) -> pd.DataFrame:
    """activity_date, hour_of_day, user_name, flow_count: int_hourly_counts, read by DuckDB."""
    header = ref.HEADER
    files = [(day, path) for day, paths in ref.lake_partitions(lake, run_date) for path in paths
             if _first_line(path) == header]
    if not files:
        return pd.DataFrame(columns=["activity_date", "hour_of_day", "user_name", "flow_count"])
    with duckdb.connect() as con:
        counts = con.execute(counts_query(files)).df()
    counts["activity_date"] = pd.to_datetime(counts.pop("day").astype("int64"), unit="D").dt.date
    counts = counts.rename(columns={"hour": "hour_of_day"})
    counts["hour_of_day"] = counts["hour_of_day"].astype("int8")
    counts["flow_count"] = counts["flow_count"].astype("int64")
    return counts[["activity_date", "hour_of_day", "user_name", "flow_count"]]


if __name__ == "__main__":
    raise SystemExit(ref.main(counter=hourly_counts))
