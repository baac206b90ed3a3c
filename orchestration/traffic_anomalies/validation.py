"""Everything a run is given, checked before any work starts (one place: `check_run`).

A bad value fails at once with one line on stderr and exit status 2, before the database is
started, locked or written to: the target schema, the worker count, every dbt var (its name
must be declared in dbt_project.yml, its value must pass the rule the macros apply), the lake
(it exists and has flows/dt=YYYY-MM-DD partitions) and the run dates (within the lake's days).

The dbt macros check the same vars again (macros/security/validate_project_vars.sql and the
macros it calls), for dbt used directly. VAR_RULES below states their rules, with their
messages, for the command line, which must answer in a second without importing dbt; the
tests run one table of values through both and require the same verdicts, so the two cannot
drift apart unnoticed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from traffic_anomalies import PROJECT_DIR

SCHEMA_PATTERN = re.compile(r"[a-z_][a-z0-9_]{0,57}")
LAKE_ROOT_PATTERN = re.compile(r"/[A-Za-z0-9_./@+-]*")
DATE_PATTERN = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])")
ROLE_PATTERN = re.compile(r"[a-z_][a-z0-9_]{0,62}")
GPFDIST_PATTERN = re.compile(r"gpfdists?://[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?")
PARTITION_PATTERN = re.compile(r"dt=([0-9]{4}-[0-9]{2}-[0-9]{2})")
LAKE_FILE_SUFFIXES = (".csv", ".csv.gz")
# Set by the nightly command's own options (--date, --lake), not through --var.
RESERVED_VARS = {"run_date": "--date", "lake_root": "--lake"}
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}")
# Set by the nightly command itself for each attempt: two attempts under one run id would
# overwrite each other's history rows.
COMMAND_VARS = {"run_id"}
LOCAL_HOSTS = ("", "localhost", "127.0.0.1", "::1")


class InvalidSetting(ValueError):
    """A setting that must not reach the database; the message says what is accepted."""


# --- settings of the command itself ------------------------------------------------------------


def schema_name(value: str | None, what: str = "TA_SCHEMA") -> str:
    if value is None or not SCHEMA_PATTERN.fullmatch(value):
        raise InvalidSetting(
            f"{what} must be a plain lowercase identifier (a-z, 0-9 and _, not starting with a "
            f"digit, at most 58 characters), got: {value!r}"
        )
    return value


def target_schema() -> str:
    """The dbt target schema from env TA_SCHEMA (default `traffic`), checked."""
    return schema_name(os.environ.get("TA_SCHEMA", "traffic"), "TA_SCHEMA")


def lake_root(value: str) -> str:
    """An absolute lake root of plain characters: it reaches a shell through file_fdw."""
    if not value or "\x00" in value:
        raise InvalidSetting(f"the lake root must be a directory path, got: {value!r}")
    resolved = str(Path(value).resolve())
    if not LAKE_ROOT_PATTERN.fullmatch(resolved):
        raise InvalidSetting(
            "the lake root must be a path of letters, digits and _ . / @ + - only "
            f"(it reaches a shell command on the database server), got: {value!r}"
        )
    return resolved


def workers(value: int | str) -> int:
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise InvalidSetting(f"workers must be an integer >= 1, got: {value!r}") from None
    if count < 1:
        raise InvalidSetting(f"workers must be an integer >= 1, got: {value!r}")
    return count


# --- dbt vars: the declaration and the rules ---------------------------------------------------


PACKAGE_VAR_SCOPES = frozenset({"dbt_project_evaluator"})


@functools.cache
def declared_vars() -> dict[str, Any]:
    """Every dbt var with its default, as dbt_project.yml declares them (the one list)."""
    import yaml

    project = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())
    # a package's scope (dbt_project_evaluator's settings for a check) holds no var of ours
    return {name: value for name, value in project["vars"].items() if name not in PACKAGE_VAR_SCOPES}


def known_dbt_vars() -> frozenset[str]:
    return frozenset(declared_vars())


def _show(value: Any) -> str:
    """A value as the macros print it (Jinja's tojson)."""
    import json

    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        return json.dumps(str(value))


def _is_int(value: Any) -> bool:  # Jinja's `integer` test: not a boolean
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:  # Jinja's `number` test (booleans are numbers there)
    return isinstance(value, (int, float)) and (not isinstance(value, float) or math.isfinite(value))


def _date_text(value: Any) -> str:
    """macros/lake/lake_paths.sql validated_partition_date."""
    text = value.isoformat() if isinstance(value, dt.date) else str(value)
    try:
        valid = bool(DATE_PATTERN.fullmatch(text)) and dt.date.fromisoformat(text) is not None
    except ValueError:
        valid = False
    if not valid:
        raise InvalidSetting(f"not a date (YYYY-MM-DD): {_show(value)}")
    return text


def _k_or_proportion(name: str) -> Callable[[Any], None]:
    """anomaly_vars.sql component_selection, pca_vars.sql pca_components_param."""

    def check(value: Any) -> None:
        if _is_int(value) and value >= 1:
            return
        if isinstance(value, float) and 0 < value <= 1:
            return
        raise InvalidSetting(f"{name} must be an integer k >= 1 or a proportion in (0, 1], got: {_show(value)}")

    return check


def _open_interval(name: str, low: float, high: float) -> Callable[[Any], None]:
    """anomaly_vars.sql outlier_threshold, spe_confidence, spike_false_alarms, day_false_alarms,
    content_false_alarms."""

    def check(value: Any) -> None:
        if not _is_number(value) or isinstance(value, bool) or value <= low or value >= high:
            raise InvalidSetting(f"{name} must be a number in ({low:g}, {high:g}), got: {_show(value)}")

    return check


def _one_of(message: str, choices: Sequence[Any]) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if not isinstance(value, (str, int, float)) or value not in choices:
            raise InvalidSetting(f"{message}, got: {_show(value)}")

    return check


def _pca_window_days(value: Any) -> None:
    if not _is_number(value) or value != int(value) or value < 2:
        raise InvalidSetting(f"pca_window_days must be an integer >= 2, got: {_show(value)}")


def _dates(name: str) -> Callable[[Any], None]:
    """validated_reload_dates (and lake_dates in validate_project_vars): a date or a list."""

    def check(value: Any) -> None:
        if value is None and name == "lake_dates":
            return
        given = [value] if isinstance(value, (str, dt.date)) else value
        if isinstance(given, Mapping) or not isinstance(given, (list, tuple)):
            raise InvalidSetting(f"{name} must be a date YYYY-MM-DD or a list of them, got: {_show(value)}")
        for day in given:
            _date_text(day)

    return check


def _run_date(value: Any) -> None:
    if value:
        _date_text(value)


def _lake_root_var(value: Any) -> None:
    """lake_paths.sql validated_lake_root."""
    root = str(value)
    root = root.rstrip("/") if root != "/" else root
    if root in ("", "None"):
        raise InvalidSetting("lake_root is not set: pass var lake_root (the absolute path of the lake) or set env TA_LAKE_ROOT")
    if not LAKE_ROOT_PATTERN.fullmatch(root):
        raise InvalidSetting(
            f"lake_root must be an absolute path of letters, digits and _ . / @ + - only, got: {_show(root)}")
    if "/../" in root + "/" or "/./" in root + "/":
        raise InvalidSetting(f"lake_root must not contain . or .. components, got: {_show(root)}")


def _lake_schema(value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not SCHEMA_PATTERN.fullmatch(value)):
        raise InvalidSetting(
            "var lake_schema must be a plain lowercase identifier (a-z, 0-9 and _, not starting with a "
            f"digit, at most 58 characters), got: {_show(value)}")


def _pca_components_by_hour(value: Any) -> None:
    if not isinstance(value, Mapping):
        raise InvalidSetting(
            f"pca_components_by_hour must map hours to settings, e.g. {{\"7\": 5}}, got: {_show(value)}")
    # Its shape and hours only, as validate_project_vars: a bad setting for one hour fails that
    # hour's node alone (pca_components_param), and the other hours still run.
    for key in value:
        if not re.fullmatch(r"[0-9]{1,2}", str(key)) or int(key) > 23:
            raise InvalidSetting(f"pca_components_by_hour keys must be hours 0-23, got: {_show(key)}")


def _gpfdist_url(value: Any) -> None:
    if value is None:
        return
    if value in ("", []):
        raise InvalidSetting(
            "Greenplum reads the lake through gpfdist: set var gpfdist_url, e.g. --vars "
            "'{gpfdist_url: \"gpfdist://etl-host:8081\"}'")
    for url in [value] if isinstance(value, str) else value if isinstance(value, list) else [value]:
        if not isinstance(url, str) or not GPFDIST_PATTERN.fullmatch(url.rstrip("/")):
            raise InvalidSetting(f"gpfdist_url must be gpfdist://host[:port] (or gpfdists://), got: {_show(url)}")


def _reporting_role(value: Any) -> None:
    if value is None or value == "":
        return
    if not isinstance(value, str) or not ROLE_PATTERN.fullmatch(value):
        raise InvalidSetting(f"reporting_role must be a plain lowercase role name (a-z, 0-9, _), got: {_show(value)}")


def _history_nights(value: Any) -> None:  # nightly_runs.sql history_nights
    if not _is_int(value) or value < 1:
        raise InvalidSetting(f"history_nights must be an integer >= 1, got: {_show(value)}")


def _run_id(value: Any) -> None:  # nightly_runs.sql nightly_run_id (null: dbt's invocation id)
    if value not in (None, "") and (not isinstance(value, str) or not RUN_ID_PATTERN.fullmatch(value)):
        raise InvalidSetting(f"run_id must be 1-63 letters, digits, '_', '.', ':' or '-', got: {_show(value)}")


def _dry_run(value: Any) -> None:  # greenplum_external_sources.sql: these mean true, the rest false
    if value not in (True, False, "true", "false", "True", "False", 1, 0, "1", "0"):
        raise InvalidSetting(f"dry_run must be true or false, got: {_show(value)}")


# var -> its check, raising InvalidSetting with the macro's message. Every declared var has one.
VAR_RULES: dict[str, Callable[[Any], None]] = {
    "lake_root": _lake_root_var,
    "run_date": _run_date,
    "reload_dates": _dates("reload_dates"),
    "lake_dates": _dates("lake_dates"),
    "lake_schema": _lake_schema,
    "gpfdist_url": _gpfdist_url,
    "dry_run": _dry_run,
    "staging_tests_scope": _one_of("var staging_tests_scope must be latest_load or all", ("latest_load", "all")),
    "pca_window_days": _pca_window_days,
    "pca_components": _k_or_proportion("pca_components"),
    "pca_components_by_hour": _pca_components_by_hour,
    "pca_backend": _one_of("pca_backend must be auto, madlib or compat", ("auto", "madlib", "compat")),
    "engine": _one_of("var engine must be auto, postgres or greenplum", ("auto", "postgres", "greenplum")),
    "outlier_threshold": _open_interval("outlier_threshold", 0, 1),
    "outlier_components": _k_or_proportion("outlier_components"),
    "spe_confidence": _open_interval("spe_confidence", 0.5, 1),
    "spe_components": _k_or_proportion("spe_components"),
    "spike_false_alarms": _open_interval("spike_false_alarms", 0, 1),
    "day_false_alarms": _open_interval("day_false_alarms", 0, 1),
    "content_false_alarms": _open_interval("content_false_alarms", 0, 1),
    "reporting_role": _reporting_role,
    "history_nights": _history_nights,
    "run_id": _run_id,
}


def dbt_var_name(name: str) -> str:
    if name in RESERVED_VARS:
        raise InvalidSetting(f"set {name} with {RESERVED_VARS[name]}, not --var")
    if name in COMMAND_VARS:
        raise InvalidSetting(f"{name} is set by the nightly command for each attempt, not by --var")
    if name not in known_dbt_vars():
        raise InvalidSetting(
            f"unknown dbt var {name!r}; the project reads: {', '.join(sorted(known_dbt_vars() - set(RESERVED_VARS) - COMMAND_VARS))}"
        )
    return name


def dbt_var_value(name: str, value: Any) -> Any:
    """The value checked by the rule the macros apply to var `name`."""
    VAR_RULES[name](value)
    return value


def dbt_vars(given: Mapping[str, Any]) -> dict[str, Any]:
    """--var settings: every name declared and every value valid."""
    for name, value in given.items():
        dbt_var_value(dbt_var_name(name), value)
    return dict(given)


# --- the lake and the dates --------------------------------------------------------------------


def lake_days(root: Path) -> list[dt.date]:
    """The days the lake delivers: flows/dt=YYYY-MM-DD directories holding a .csv or .csv.gz
    file (what stage_external_sources lists on the server), in order."""
    days = []
    try:
        partitions = list(os.scandir(root / "flows"))
    except (FileNotFoundError, NotADirectoryError):
        return []
    for entry in partitions:
        match = PARTITION_PATTERN.fullmatch(entry.name)
        if not match or not entry.is_dir():
            continue
        try:
            day = dt.date.fromisoformat(match.group(1))
            has_file = any(f.name.endswith(LAKE_FILE_SUFFIXES) and f.is_file() for f in os.scandir(entry.path))
        except (ValueError, OSError):
            continue
        if has_file:
            days.append(day)
    return sorted(days)


def lake_seen_elsewhere(given_vars: Mapping[str, Any]) -> bool:
    """The lake is read on another machine than this one: through gpfdist (Greenplum), or by a
    database server that is not local. There a path missing here proves nothing, and the
    staging step (stage_external_sources) refuses a lake without partitions instead."""
    if given_vars.get("gpfdist_url"):
        return True
    host = os.environ.get("PGHOST", "")
    return bool(os.environ.get("PGSERVICE")) or not (host in LOCAL_HOSTS or host.startswith("/"))


def check_lake(root: str, dates: Sequence[dt.date], given_vars: Mapping[str, Any]) -> list[dt.date]:
    """The lake exists, has partitions, and every run date is within its days."""
    path = Path(root)
    if not path.is_dir():
        if lake_seen_elsewhere(given_vars):
            return []
        what = "is not a directory" if path.exists() else "does not exist"
        raise InvalidSetting(f"lake {root} {what} (expected the directory holding flows/dt=YYYY-MM-DD/)")
    days = lake_days(path)
    if not days:
        raise InvalidSetting(
            f"lake {root} has no partitions: no flows/dt=YYYY-MM-DD directory holding .csv or .csv.gz files")
    outside = [d for d in dates if d < days[0] or d > days[-1]]
    if outside:
        which = outside[0].isoformat() if len(outside) == 1 else f"{outside[0]} … {outside[-1]}"
        raise InvalidSetting(
            f"run date {which} is outside the lake's days: lake {root} has {len(days)} days, "
            f"{days[0]} … {days[-1]}")
    return days


def check_run(dates: Sequence[dt.date], *, lake: str, worker_count: int, given_vars: Mapping[str, Any]) -> None:
    """Every check of a nightly or backfill run, cheapest first; raises InvalidSetting."""
    target_schema()
    workers(worker_count)
    dbt_vars(given_vars)
    check_lake(lake_root(lake), dates, given_vars)


def argparse_type(check):
    """An argparse `type=` from a check: InvalidSetting becomes an argparse error (exit 2)."""

    def convert(text: str):
        try:
            return check(text)
        except InvalidSetting as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = check.__name__.replace("_", " ")
    return convert
