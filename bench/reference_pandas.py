"""The nightly pipeline in memory with pandas + numpy: the reference the database run is timed against.

Reads the same lake files, applies the same line rules as base_lake__flow_lines / stg_flows (a
line is a flow only when it passes every check; a file whose first line is not the expected
header is distrusted as a whole), counts flows per (UTC day, hour of day, user) like
int_hourly_counts, builds the same PCA window (dim_days, dim_users), runs one PCA per hour of
day (centred SVD; components kept by the rule of madlib_compat.pca_sparse_train: the smallest k
whose cumulative share of the variance reaches `components`, among the numerically non-zero
ones) and lists outliers with the two rules of fct_user_outliers:

    published         any kept component, loading > threshold, score = largest loading
    absolute_loading  the `outlier_components` leading components, |loading| > threshold,
                      score = largest |loading|

A component's sign is arbitrary (the database's eigen-solver and LAPACK may pick opposite
signs), so `published`, which looks at positive loadings only, is compared with the database
after aligning each component's sign to the database's (see `published_outliers`).

Standalone: `python bench/reference_pandas.py --lake DIR --run-date D --out DIR`; writes
`summary.json` (timings per stage, checksums), `outliers.csv`, `components.npz` and, with
`--write-counts`, `hourly_counts.csv`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import io
import json
import re
import time
import zlib
from csv import QUOTE_NONE
from itertools import compress
from pathlib import Path

import numpy as np
import pandas as pd

HEADER = b"start_time,user_name,src_ip,dst_ip,dst_port,protocol,bytes"
COLUMNS = ["start_time", "user_name", "src_ip", "dst_ip", "dst_port", "protocol", "bytes"]
EPS = 2.220446049250313e-16
_DAY_NS = 86_400 * 10**9
_HOUR_NS = 3_600 * 10**9

ISO_RE = re.compile(
    r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?Z")
EPOCH_RE = re.compile(r"[0-9]{9,10}(\.[0-9]{1,6})?")
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_RE = re.compile(rf"({_OCTET}\.){{3}}{_OCTET}")
IPV6_FULL_RE = re.compile(r"([0-9a-f]{1,4}:){7}[0-9a-f]{1,4}", re.I)
IPV6_SHORT_RE = re.compile(r"(([0-9a-f]{1,4}:){0,6}[0-9a-f]{1,4})?::(([0-9a-f]{1,4}:){0,6}[0-9a-f]{1,4})?", re.I)
PORT_RE = re.compile(r"[0-9]{1,5}")
PROTOCOL_RE = re.compile(r"[a-z0-9-]{1,16}")
BYTES_RE = re.compile(r"[0-9]{1,13}")


# --- staging: the line rules ------------------------------------------------------------------


def _read_bytes(path: Path) -> tuple[bytes, bool]:
    """The file's bytes, and whether all of it could be read."""
    data = path.read_bytes()
    if path.suffix != ".gz":
        return data, True
    try:
        return gzip.decompress(data), True
    except (OSError, EOFError, zlib.error):
        # like `gzip -dc`: the lines decoded before the damage are still read
        try:
            return zlib.decompressobj(wbits=31).decompress(data), False
        except zlib.error:
            return b"", False


def _is_ip(value: str) -> bool:
    return bool(IPV4_RE.fullmatch(value) or IPV6_FULL_RE.fullmatch(value)
                or (IPV6_SHORT_RE.fullmatch(value) and value.count(":") <= 7))


def _valid_by_unique(values: pd.Series, check) -> np.ndarray:
    """Evaluate `check` once per distinct value (users, IPs, ports repeat a lot)."""
    codes, uniques = pd.factorize(values, sort=False)
    ok = np.fromiter((bool(check(u)) for u in uniques), dtype=bool, count=len(uniques))
    return ok[codes]


def _user_ok(name: str) -> bool:
    return name.strip(" ") != "" and name == name.strip(" ") and len(name) <= 128


def _port_ok(text: str) -> bool:
    return bool(PORT_RE.fullmatch(text)) and int(text) <= 65535


def file_flows(path: Path, partition: dt.date) -> pd.DataFrame:
    """The valid flows of one lake file: day (days since 1970), hour, user_name and the line."""
    data, complete = _read_bytes(path)
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the newline ending the last line does not open another one
    if not complete and lines:
        lines.pop()  # the file could not be read past its last line: that line is incomplete
    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    empty = pd.DataFrame({"day": np.array([], np.int32), "hour": np.array([], np.int8),
                          "user_name": [], "line": []})
    if not lines or lines[0] != HEADER:
        return empty  # unexpected header: the whole file is quarantined
    # byte-level checks for all lines at once: commas (7 fields), control characters, non-ASCII
    joined = np.frombuffer(b"\n".join(lines), dtype=np.uint8)
    lengths = np.fromiter(map(len, lines), dtype=np.int64, count=len(lines))
    line_of_byte = np.repeat(np.arange(len(lines)), lengths + 1)[: len(joined)]
    n = len(lines)
    commas = np.bincount(line_of_byte[joined == 44], minlength=n)
    control = np.bincount(line_of_byte[((joined < 32) & (joined != 10)) | (joined == 127)], minlength=n) > 0
    high = np.bincount(line_of_byte[joined >= 128], minlength=n) > 0
    candidate = (commas == 6) & ~control
    candidate[0] = False  # the header
    for i in np.flatnonzero(candidate & high):  # non-ASCII: must be valid UTF-8
        try:
            lines[i].decode("utf-8")
        except UnicodeDecodeError:
            candidate[i] = False
    if not candidate.any():
        return empty
    kept_lines = list(compress(lines, candidate))
    body = b"\n".join(kept_lines) + b"\n"
    df = pd.read_csv(io.BytesIO(body), header=None, names=COLUMNS, dtype=str, na_filter=False,
                     quoting=QUOTE_NONE, encoding="utf-8", engine="c")
    ts = df["start_time"]
    iso = ts.str.fullmatch(ISO_RE)
    epoch = ~iso & ts.str.fullmatch(EPOCH_RE)
    started = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns, UTC]")
    if iso.any():  # not a real date (2017-02-30): NaT, rejected like the SQL day-of-month check
        started[iso] = pd.to_datetime(ts[iso], format="ISO8601", utc=True, errors="coerce")
    if epoch.any():
        started[epoch] = pd.to_datetime(ts[epoch].astype(float), unit="s", utc=True)
    ns = started.to_numpy(dtype="datetime64[ns]").view(np.int64)
    has_ts = started.notna().to_numpy()
    part_ns = (partition - dt.date(1970, 1, 1)).days * _DAY_NS
    ok = has_ts & (ns >= part_ns - _DAY_NS) & (ns < part_ns + 2 * _DAY_NS)
    ok &= _valid_by_unique(df["user_name"], _user_ok)
    ok &= _valid_by_unique(df["src_ip"], _is_ip)
    ok &= _valid_by_unique(df["dst_ip"], _is_ip)
    ok &= _valid_by_unique(df["dst_port"], _port_ok)
    ok &= _valid_by_unique(df["protocol"], PROTOCOL_RE.fullmatch)
    ok &= df["bytes"].str.fullmatch(BYTES_RE).to_numpy()
    ns = ns[ok]
    return pd.DataFrame({
        "day": (ns // _DAY_NS).astype(np.int32),
        "hour": ((ns % _DAY_NS) // _HOUR_NS).astype(np.int8),
        "user_name": df["user_name"].to_numpy()[ok],
        "line": np.asarray(kept_lines, dtype=object)[ok],
    })


def lake_partitions(lake: Path, run_date: dt.date) -> list[tuple[dt.date, list[Path]]]:
    """Days present in the lake up to the run date, each with its files (sorted like the reader)."""
    out = []
    for directory in sorted((lake / "flows").glob("dt=*")):
        day = dt.date.fromisoformat(directory.name[3:])
        if day > run_date:
            continue
        files = sorted(p for p in directory.iterdir()
                       if p.is_file() and (p.name.endswith(".csv") or p.name.endswith(".csv.gz")))
        if files:
            out.append((day, files))
    return out


def hourly_counts(lake: Path, run_date: dt.date) -> pd.DataFrame:
    """activity_date, hour_of_day, user_name, flow_count: int_hourly_counts."""
    per_day = []
    for day, files in lake_partitions(lake, run_date):
        flows = pd.concat([file_flows(path, day) for path in files], ignore_index=True)
        # a valid line repeated verbatim within its day is one flow delivered twice
        flows = flows[~flows["line"].duplicated()]
        if len(flows):
            per_day.append(flows.groupby(["day", "hour", "user_name"], sort=False).size())
    if not per_day:
        return pd.DataFrame(columns=["activity_date", "hour_of_day", "user_name", "flow_count"])
    counts = pd.concat(per_day).groupby(level=[0, 1, 2], sort=False).sum().rename("flow_count").reset_index()
    counts["activity_date"] = pd.to_datetime(counts.pop("day").astype(np.int64), unit="D").dt.date
    counts = counts.rename(columns={"hour": "hour_of_day"})
    return counts[["activity_date", "hour_of_day", "user_name", "flow_count"]]


# --- PCA per hour -----------------------------------------------------------------------------


def pca_window(counts: pd.DataFrame, run_date: dt.date, window_days: int) -> tuple[list[dt.date], list[str]]:
    """dim_days (the window) and dim_users (users with flows in it, by name)."""
    first_day = min(counts["activity_date"])
    start = max(first_day, run_date - dt.timedelta(days=window_days - 1))
    days = [start + dt.timedelta(days=i) for i in range((run_date - start).days + 1)]
    in_window = counts[counts["activity_date"].isin(set(days))]
    users = sorted(in_window["user_name"].unique())
    return days, users


def hour_pca(x: np.ndarray, components: float | int) -> dict:
    """pca_sparse_train on a dense days x users matrix: kept components, their spread and shares."""
    n = x.shape[0]
    xc = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    lam = s * s
    total = float(np.sum(xc * xc))
    gram_diag_max = float(np.max(np.einsum("ij,ij->i", x, x))) if x.size else 0.0
    tol = 100 * min(x.shape) * EPS * max(lam[0] if len(lam) else 0.0, gram_diag_max)
    nz = int(np.sum(lam > tol)) if len(lam) else 0
    if isinstance(components, int):
        k = min(components, nz)
    else:
        cum = np.cumsum(lam[:nz] / total) if total > 0 else np.zeros(nz)
        hit = np.flatnonzero(cum >= components)
        k = int(hit[0] + 1) if len(hit) else nz
    proportion = lam[:k] / total if total > 0 else np.zeros(k)
    return {
        "k": k,
        "components": vt[:k].copy(),
        "std_dev": s[:k] / np.sqrt(n - 1),
        "proportion": proportion,
        "cumulative_proportion": np.cumsum(proportion),
    }


def hourly_pcas(counts: pd.DataFrame, days: list[dt.date], users: list[str],
                components: float | int) -> list[dict]:
    day_index = {d: i for i, d in enumerate(days)}
    user_index = {u: i for i, u in enumerate(users)}
    window = counts[counts["activity_date"].isin(day_index.keys())]
    rows = window["activity_date"].map(day_index).to_numpy()
    cols = window["user_name"].map(user_index).to_numpy()
    hours = window["hour_of_day"].to_numpy()
    values = window["flow_count"].to_numpy(dtype=float)
    results = []
    for hour in range(24):
        x = np.zeros((len(days), len(users)))
        sel = hours == hour
        x[rows[sel], cols[sel]] = values[sel]
        results.append(hour_pca(x, components))
    return results


# --- outliers (fct_user_outliers) -------------------------------------------------------------


def outliers(pcas: list[dict], users: list[str], threshold: float = 0.1,
             outlier_components: int | float = 3, signs: list[np.ndarray] | None = None) -> pd.DataFrame:
    """Both methods; `signs` (one +-1 per kept component and hour) flips components first."""
    frames = []
    for hour, pca in enumerate(pcas):
        comps = pca["components"]
        if signs is not None:
            comps = comps * signs[hour][:, None]
        k = comps.shape[0]
        if k == 0:
            continue
        ranks = np.arange(1, k + 1)
        if isinstance(outlier_components, int):
            selected = ranks <= outlier_components
        else:
            selected = (pca["cumulative_proportion"] - pca["proportion"]) < outlier_components
        for method, score, use in (("published", comps, np.ones(k, bool)),
                                   ("absolute_loading", np.abs(comps), selected)):
            masked = np.where(use[:, None] & (score > threshold), score, -np.inf)
            best = np.argmax(masked, axis=0)  # first (= lowest rank) of the largest scores
            best_score = masked[best, np.arange(masked.shape[1])]
            hit = np.flatnonzero(best_score > -np.inf)
            frames.append(pd.DataFrame({
                "method": method,
                "hour_of_day": hour,
                "user_name": np.asarray(users, dtype=object)[hit],
                "component_rank": best[hit] + 1,
                "loading": comps[best[hit], hit],
                "outlier_score": best_score[hit],
            }))
    if not frames:
        return pd.DataFrame(columns=["method", "hour_of_day", "user_name", "component_rank", "loading",
                                     "outlier_score", "rank_in_hour"])
    out = pd.concat(frames, ignore_index=True)
    out = out.sort_values(["method", "hour_of_day", "outlier_score", "component_rank", "user_name"],
                          ascending=[True, True, False, True, True], kind="stable")
    out["rank_in_hour"] = out.groupby(["method", "hour_of_day"]).cumcount() + 1
    return out.reset_index(drop=True)


def published_outliers(pcas: list[dict], users: list[str], db_components: dict[int, np.ndarray],
                       threshold: float = 0.1) -> pd.DataFrame:
    """The published method after giving each component the sign the database gave it.

    `db_components[hour]` is the database's k x users matrix with columns in `users` order.
    """
    signs = []
    for hour, pca in enumerate(pcas):
        ref = pca["components"]
        db = db_components.get(hour)
        if db is None or db.shape != ref.shape:
            signs.append(np.ones(len(ref)))
        else:
            signs.append(np.where(np.einsum("ij,ij->i", ref, db) < 0, -1.0, 1.0))
    out = outliers(pcas, users, threshold, signs=signs)
    return out[out["method"] == "published"].reset_index(drop=True)


# --- the whole run ----------------------------------------------------------------------------


def run(lake: Path, run_date: dt.date, window_days: int = 28, components: float | int = 0.99,
        threshold: float = 0.1, outlier_components: int | float = 3, counter=None) -> dict:
    """`counter(lake, run_date)` gives the hourly counts (default: this module's hourly_counts;
    reference_duckdb.py passes its own)."""
    timings = {}
    t0 = time.perf_counter()
    counts = (counter or hourly_counts)(lake, run_date)
    timings["read_parse_count_s"] = time.perf_counter() - t0
    t = time.perf_counter()
    days, users = pca_window(counts, run_date, window_days)
    pcas = hourly_pcas(counts, days, users, components)
    timings["pca_s"] = time.perf_counter() - t
    t = time.perf_counter()
    found = outliers(pcas, users, threshold, outlier_components)
    timings["outliers_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    return {"counts": counts, "days": days, "users": users, "pcas": pcas, "outliers": found, "timings": timings}


def counts_checksums(counts: pd.DataFrame) -> dict:
    return {
        "rows": int(len(counts)),
        "flows": int(counts["flow_count"].sum()),
        "days": int(counts["activity_date"].nunique()),
        "users": int(counts["user_name"].nunique()),
    }


def main(argv: list[str] | None = None, counter=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, type=Path)
    parser.add_argument("--run-date", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--window-days", type=int, default=28)
    parser.add_argument("--components", type=float, default=0.99,
                        help="proportion of variance in (0, 1], or an integer k >= 1 (written as 5)")
    parser.add_argument("--outlier-threshold", type=float, default=0.1)
    parser.add_argument("--outlier-components", type=float, default=3)
    parser.add_argument("--write-counts", action="store_true", help="also write hourly_counts.csv")
    args = parser.parse_args(argv)
    as_k = lambda v: int(v) if float(v).is_integer() and v >= 1 else v  # noqa: E731
    result = run(args.lake, args.run_date, args.window_days, as_k(args.components),
                 args.outlier_threshold, as_k(args.outlier_components), counter)
    args.out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    result["outliers"].to_csv(args.out / "outliers.csv", index=False)
    np.savez(args.out / "components.npz", users=np.asarray(result["users"], dtype=str),
             **{f"h{h:02d}": p["components"] for h, p in enumerate(result["pcas"])})
    counts = result["counts"]
    by_day_hour = counts.groupby(["activity_date", "hour_of_day"]).agg(
        rows=("flow_count", "size"), flows=("flow_count", "sum")).reset_index()
    by_day_hour.to_csv(args.out / "counts_by_day_hour.csv", index=False)
    if args.write_counts:
        result["counts"].to_csv(args.out / "hourly_counts.csv", index=False)
    write_s = time.perf_counter() - t
    summary = {
        "timings_s": {**result["timings"], "write_outputs_s": write_s},
        "counts": counts_checksums(result["counts"]),
        "window": {"days": len(result["days"]), "first": result["days"][0].isoformat(),
                   "last": result["days"][-1].isoformat(), "users": len(result["users"])},
        "k_per_hour": [p["k"] for p in result["pcas"]],
        "outliers": {m: int((result["outliers"]["method"] == m).sum())
                     for m in ("published", "absolute_loading")},
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
