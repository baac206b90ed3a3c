"""Checks of the values that become identifiers, paths or SQL, for the command line.

The dbt macros check the same values again (macros/security/, macros/lake/lake_paths.sql):
these make a bad command-line argument or environment variable fail at once with a clear
argparse-style message, before anything starts or reaches the database.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
from pathlib import Path

from traffic_anomalies import PROJECT_DIR

SCHEMA_PATTERN = re.compile(r"[a-z_][a-z0-9_]{0,57}")
LAKE_ROOT_PATTERN = re.compile(r"/[A-Za-z0-9_./@+-]*")
VAR_NAME_PATTERN = re.compile(r"""var\(\s*['"]([a-z_][a-z0-9_]*)['"]""")
# Set by the nightly command's own options (--date, --lake), not through --var.
RESERVED_VARS = {"run_date": "--date", "lake_root": "--lake"}


class InvalidSetting(ValueError):
    """A setting that must not reach the database; the message says what is accepted."""


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


@functools.cache
def known_dbt_vars() -> frozenset[str]:
    """Every var the project's models and macros read (found in their source)."""
    names: set[str] = set()
    for folder in ("models", "macros", "tests", "analyses"):
        for path in (PROJECT_DIR / folder).rglob("*"):
            if path.suffix in (".sql", ".yml", ".md") and path.is_file():
                names.update(VAR_NAME_PATTERN.findall(path.read_text(errors="replace")))
    names.update(("lake_root", "run_date"))
    return frozenset(names)


def dbt_var_name(name: str) -> str:
    if name in RESERVED_VARS:
        raise InvalidSetting(f"set {name} with {RESERVED_VARS[name]}, not --var")
    if name not in known_dbt_vars():
        raise InvalidSetting(
            f"unknown dbt var {name!r}; the project reads: {', '.join(sorted(known_dbt_vars() - set(RESERVED_VARS)))}"
        )
    return name


def argparse_type(check):
    """An argparse `type=` from a check: InvalidSetting becomes an argparse error (exit 2)."""

    def convert(text: str):
        try:
            return check(text)
        except InvalidSetting as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = check.__name__.replace("_", " ")
    return convert
