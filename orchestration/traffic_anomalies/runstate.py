"""What the nightly run keeps in the database: completion markers and the one-run-at-a-time lock.

Markers live in `ta_meta.step_state`, one row per (dbt target schema, step): the tables a step
builds belong to the schema, not to a date, so its row says from which inputs (fingerprint,
run date) they were last built. A row is written only after the step's dbt work has
committed, so after a crash a rerun redoes exactly the steps without a row. Connections come
from the libpq PG* variables, like dbt's profile.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

META_SCHEMA = "ta_meta"
MARKER_TABLE = "step_state"
# First key of every advisory lock we take ("TA" + 1); the second is derived from the target.
LOCK_CLASS = 0x5441_0001 & 0x7FFF_FFFF
_DDL_LOCK_KEY = 0  # second key serialising the creation of ta_meta


def target_schema() -> str:
    """The dbt target schema (profiles.yml reads TA_SCHEMA): independent pipelines per schema."""
    from traffic_anomalies.validation import target_schema as checked

    return checked()  # a plain identifier: it names the lock, markers and artifact directory


def connect(application_name: str = "traffic-anomalies") -> psycopg2.extensions.connection:
    conn = psycopg2.connect("", application_name=application_name[:63])
    conn.autocommit = True
    return conn


@contextmanager
def connection(application_name: str = "traffic-anomalies") -> Iterator[psycopg2.extensions.connection]:
    conn = connect(application_name)
    try:
        yield conn
    finally:
        conn.close()


def ensure_meta(conn: psycopg2.extensions.connection) -> None:
    """Create the marker table once (serialised: parallel CREATE IF NOT EXISTS can still race)."""
    with conn.cursor() as cur:
        cur.execute("select to_regclass(%s)", (f"{META_SCHEMA}.{MARKER_TABLE}",))
        if cur.fetchone()[0] is not None:
            return
    conn.autocommit = False  # one transaction, so the xact lock covers every statement
    try:
        with conn, conn.cursor() as cur:
            cur.execute("select pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, _DDL_LOCK_KEY))
            # only when missing: the schema's owner need not be allowed to create schemas
            cur.execute("select 1 from pg_namespace where nspname = %s", (META_SCHEMA,))
            if cur.fetchone() is None:
                cur.execute(f"create schema {META_SCHEMA}")
            cur.execute(
                f"""
                create table if not exists {META_SCHEMA}.{MARKER_TABLE} (
                    target_schema text not null,
                    step text not null,  -- task family, and hour for the PCA hours
                    task_id text not null,
                    task_family text not null,
                    run_date date not null,
                    fingerprint text not null,  -- hash of the inputs (date, vars, lake files)
                    run_id text,  -- the attempt that wrote it
                    finished_at timestamptz not null default clock_timestamp(),
                    elapsed_s double precision,
                    nodes jsonb not null default '[]',  -- per dbt node: status, time, rows
                    details jsonb not null default '{{}}',
                    primary key (target_schema, step)
                )
                """
            )
    finally:
        conn.autocommit = True


@dataclass(frozen=True)
class Marker:
    step: str
    task_id: str
    task_family: str
    run_date: dt.date
    fingerprint: str
    run_id: str | None
    finished_at: dt.datetime
    elapsed_s: float | None
    nodes: list[dict[str, Any]]
    details: dict[str, Any]


def markers(schema: str | None = None) -> dict[str, Marker]:
    """Every marker of a target schema, by step (one query: complete() is called often)."""
    with connection("traffic-anomalies markers") as conn:
        with conn.cursor() as cur:
            cur.execute("select to_regclass(%s)", (f"{META_SCHEMA}.{MARKER_TABLE}",))
            if cur.fetchone()[0] is None:
                return {}
            cur.execute(
                f"""
                select step, task_id, task_family, run_date, fingerprint, run_id, finished_at,
                    elapsed_s, nodes, details
                from {META_SCHEMA}.{MARKER_TABLE}
                where target_schema = %s
                """,
                (schema or target_schema(),),
            )
            return {row[0]: Marker(*row) for row in cur.fetchall()}


def clear_markers(schema: str | None = None) -> int:
    """Forget every step of a schema (`--force`): the next run starts from the beginning."""
    with connection("traffic-anomalies markers") as conn:
        ensure_meta(conn)
        with conn.cursor() as cur:
            cur.execute(f"delete from {META_SCHEMA}.{MARKER_TABLE} where target_schema = %s",
                        (schema or target_schema(),))
            return cur.rowcount


@dataclass(frozen=True)
class StepTarget:
    """Luigi Target of a step: its row in ta_meta.step_state, made from the same inputs, with
    every upstream step complete and older than it (make's rule)."""

    schema: str
    step: str
    fingerprint: str
    upstream: tuple["StepTarget", ...] = ()

    def exists(self) -> bool:
        return self.complete_in(markers(self.schema))

    def complete_in(self, known: Mapping[str, Marker]) -> bool:
        marker = known.get(self.step)
        if marker is None or marker.fingerprint != self.fingerprint:
            return False
        for upstream in self.upstream:
            if not upstream.complete_in(known):
                return False
            if known[upstream.step].finished_at > marker.finished_at:
                return False  # upstream was rebuilt after us: our output is stale
        return True

    def clear(self) -> None:
        """Forget the step before redoing it: a crash mid-way must not look finished."""
        with connection("traffic-anomalies markers") as conn:
            ensure_meta(conn)
            with conn.cursor() as cur:
                cur.execute(
                    f"delete from {META_SCHEMA}.{MARKER_TABLE} where target_schema = %s and step = %s",
                    (self.schema, self.step),
                )

    def write(
        self,
        *,
        task_id: str,
        task_family: str,
        run_date: dt.date,
        run_id: str | None,
        elapsed_s: float,
        nodes: Sequence[Mapping[str, Any]] = (),
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Record that the step's work has committed (call only after it has)."""
        with connection("traffic-anomalies markers") as conn:
            ensure_meta(conn)
            with conn.cursor() as cur:
                cur.execute(
                    f"""
                    insert into {META_SCHEMA}.{MARKER_TABLE} (target_schema, step, task_id, task_family,
                        run_date, fingerprint, run_id, elapsed_s, nodes, details)
                    values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                    on conflict (target_schema, step) do update set
                        task_id = excluded.task_id,
                        task_family = excluded.task_family,
                        run_date = excluded.run_date,
                        fingerprint = excluded.fingerprint,
                        run_id = excluded.run_id,
                        finished_at = clock_timestamp(),
                        elapsed_s = excluded.elapsed_s,
                        nodes = excluded.nodes,
                        details = excluded.details
                    """,
                    (self.schema, self.step, task_id, task_family, run_date, self.fingerprint, run_id,
                     elapsed_s, json.dumps(list(nodes)), json.dumps(dict(details or {}))),
                )


def published_run(schema: str | None = None) -> tuple[str, dt.date, dt.datetime] | None:
    """The run the marts show (run id, run date, published at), None before the first."""
    schema = schema or target_schema()
    with connection("traffic-anomalies summary") as conn, conn.cursor() as cur:
        cur.execute("select to_regclass(%s)", (f'"{schema}"."dim_runs"',))
        if cur.fetchone()[0] is None:
            return None
        cur.execute(sql.SQL("select run_id, run_date, published_at from {} "
                            "order by published_at desc, run_id desc limit 1")
                    .format(sql.Identifier(schema, "dim_runs")))
        row = cur.fetchone()
    return None if row is None else (row[0], row[1], row[2])


def count_rows(relation_names: Sequence[str]) -> dict[str, int | str]:
    """`count(*)` of each table; views say "view" (counting one re-reads the lake behind it)."""
    counts: dict[str, int | str] = {}
    with connection("traffic-anomalies summary") as conn:
        with conn.cursor() as cur:
            for name in relation_names:
                cur.execute("select relkind from pg_class where oid = to_regclass(%s)", (name,))
                row = cur.fetchone()
                if row is None:
                    counts[name] = "missing"
                elif row[0] in ("v", "f"):
                    counts[name] = "view" if row[0] == "v" else "foreign table"
                else:
                    # relation_name comes from dbt already quoted ("db"."schema"."table")
                    cur.execute(sql.SQL("select count(*) from {}").format(sql.SQL(name)))
                    counts[name] = int(cur.fetchone()[0])
    return counts


# --- one run at a time -------------------------------------------------------------------------


class RunLockBusy(RuntimeError):
    """Another nightly run holds the lock; the message says who, when known."""


def lock_key(schema: str) -> int:
    """Second advisory-lock key: runs into different target schemas do not exclude each other."""
    return zlib.crc32(schema.encode()) & 0x7FFF_FFFF


class RunLock:
    """A session-level advisory lock held by this process's own connection for the whole run.

    The server releases it when the connection ends, so a killed run never leaves it behind.
    """

    def __init__(self, label: str, schema: str | None = None):
        self.schema = schema or target_schema()
        self.key = lock_key(self.schema)
        self.application_name = f"traffic-anomalies {label} pid={os.getpid()}"
        self.conn: psycopg2.extensions.connection | None = None
        self.held = False

    def acquire(self, wait: bool = False) -> None:
        self.conn = connect(self.application_name)
        with self.conn.cursor() as cur:
            if wait:
                cur.execute("select pg_advisory_lock(%s, %s)", (LOCK_CLASS, self.key))
                self.held = True
                return
            cur.execute("select pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, self.key))
            if cur.fetchone()[0]:
                self.held = True
                return
        holder = self.holder()
        self.release()
        raise RunLockBusy(
            f"another nightly run is in progress for schema {self.schema!r}"
            + (f" ({holder})" if holder else "")
            + "; rerun with --wait to queue behind it"
        )

    def holder(self) -> str | None:
        """Who holds the lock: the application_name carries the holder's OS pid."""
        assert self.conn is not None
        with self.conn.cursor() as cur:
            cur.execute(
                """
                select a.application_name, a.backend_start
                from pg_locks l join pg_stat_activity a on a.pid = l.pid
                where l.locktype = 'advisory' and l.granted
                  and l.classid = %s and l.objid = %s and l.objsubid = 2
                """,
                (LOCK_CLASS, self.key),
            )
            row = cur.fetchone()
        if row is None:
            return None
        name, since = row
        return f"{name}, since {since:%Y-%m-%d %H:%M:%S %Z}".replace("traffic-anomalies ", "")

    def release(self) -> None:
        if self.conn is None:
            return
        try:
            if self.held and not self.conn.closed:
                # The server drops a closed session's locks only once its backend has exited,
                # which can come after close() returns: unlock first, so the next run finds it free.
                with self.conn.cursor() as cur:
                    cur.execute("select pg_advisory_unlock(%s, %s)", (LOCK_CLASS, self.key))
        except psycopg2.Error:
            pass  # a broken connection: its end releases the lock
        finally:
            self.held = False
            self.conn.close()
            self.conn = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
