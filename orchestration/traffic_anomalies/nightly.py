"""`traffic-anomalies nightly | backfill | scheduler`: run the Luigi DAG of tasks.py.

One run at a time per target schema (a PostgreSQL advisory lock held for the whole run), the
central scheduler when it answers (else Luigi's local one), exit codes from luigi.cfg [retcode]
(128 + the signal on SIGINT/SIGTERM), and a summary of what ran, what was already complete
(and why, when nothing ran), each failure once with its log, rows per layer and, after a
successful run only, where results are. Luigi's own log goes to a file beside the steps' logs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import multiprocessing
import os
import secrets
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2

from traffic_anomalies import PROJECT_DIR, localdb
from traffic_anomalies import tasks  # sets LUIGI_CONFIG_PATH before luigi is imported
from traffic_anomalies import dbt as dbt_runner
from traffic_anomalies import runstate, validation
from traffic_anomalies.scheduler import (  # noqa: F401  (nightly.scheduler_* stay importable)
    SCHEDULER_PORT, luigi_dir, scheduler_answers, scheduler_down, scheduler_serve, scheduler_status, scheduler_up,
    scheduler_url,
)

import luigi  # noqa: E402  (after tasks: see there)
import luigi.execution_summary  # noqa: E402
from luigi.retcodes import retcode  # noqa: E402

logger = logging.getLogger("traffic_anomalies.nightly")

DEFAULT_WORKERS = 4
# Nights of logs and artifacts kept under target/nightly/<schema>/ (option --keep-nights).
DEFAULT_KEEP_NIGHTS = int(os.environ.get("TA_KEEP_NIGHTS") or 7)
# Tasks whose models' rows the summary counts, and the layer a model name belongs to.
COUNTED_TASKS = ("BuildStaging", "BuildPcaInput", "BuildMarts")
LAYER_PREFIXES = (("stg_", "staging"), ("int_hourly", "hourly counts"), ("int_", "intermediate"),
                  ("dim_", "marts"), ("fct_", "marts"))


# --- running the DAG --------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one Luigi build of NightlyRun(date) did."""

    date: dt.date
    code: int
    completed: list[str] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    failures: list[tuple[str, str, str | None]] = field(default_factory=list)  # (step, message, log)
    not_run: list[str] = field(default_factory=list)
    other_worker: list[str] = field(default_factory=list)  # run by another worker of the scheduler
    run_id: str | None = None
    interrupted: str | None = None  # the signal's name


def exit_code(sets: dict[str, set[Any]], root: Any) -> int:
    """Luigi's own rule (luigi.retcodes.run_with_retcodes) with our [retcode] values."""
    codes = retcode()
    code = max(
        value if sets[status] else 0
        for value, status in (
            (codes.missing_data, "still_pending_ext"),
            (codes.task_failed, "failed"),
            (codes.already_running, "run_by_other_worker"),
            (codes.scheduling_error, "scheduling_error"),
            (codes.not_run, "not_run"),
        )
    )
    if code == 0 and root not in sets["completed"] and root not in sets["already_done"]:
        code = codes.not_run or 1  # never 0 when the run did not finish
    return code


def build_date(task: tasks.NightlyRun, workers: int, scheduler: dict[str, Any]) -> Outcome:
    result = luigi.build([task], detailed_summary=True, workers=workers, **scheduler)
    worker = result.worker
    sets = luigi.execution_summary._summary_dict(worker)
    outcome = Outcome(date=task.date, code=exit_code(sets, task), run_id=getattr(task, "run_id", None))
    outcome.completed = sorted(step_label(t) for t in sets["completed"])
    outcome.already_done = sorted(step_label(t) for t in sets["already_done"])
    for failed in sorted(sets["failed"] | sets["scheduling_error"], key=str):
        # The explanation the task sent the scheduler: on_failure() puts dbt's message there.
        error = worker._scheduler.fetch_error(failed.task_id).get("error") or '"(no message)"'
        log = str(failed.target_path() / "dbt.out") if isinstance(failed, tasks.DbtTask) else None
        outcome.failures.append((step_label(failed), _decode_expl(error).strip(), log))
    outcome.not_run = sorted(
        step_label(t) for status in ("upstream_failure", "upstream_scheduling_error", "not_run", "still_pending_ext")
        for t in sets[status]
    )
    outcome.other_worker = sorted(step_label(t) for t in sets["run_by_other_worker"])
    return outcome


def step_label(task: Any) -> str:
    """A step as the summary names it: PcaHours, BuildMarts (the date is in the heading)."""
    if isinstance(task, tasks.DbtTask):
        return task.run_label()
    return getattr(task, "task_family", str(task))


def _decode_expl(expl: str) -> str:
    """Luigi's worker sends the explanation to the scheduler JSON-encoded (worker.py)."""
    try:
        decoded = json.loads(expl)
    except ValueError:  # a scheduler that stored it as plain text
        return expl
    return decoded if isinstance(decoded, str) else expl


def choose_scheduler(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    if args.local_scheduler:
        return {"local_scheduler": True}, "local scheduler"
    url = args.scheduler_url or scheduler_url()
    if scheduler_answers(url):
        return {"local_scheduler": False, "scheduler_url": url}, f"central scheduler {url}"
    if args.scheduler_url:
        raise RuntimeError(f"no Luigi scheduler answers at {url} (start one: `traffic-anomalies scheduler up`)")
    return {"local_scheduler": True}, f"local scheduler (none answers at {url})"


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM reached the nightly command."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_main_pid: int | None = None


_pending_signal: int | None = None
# Seconds after which the main process raises the interrupt again if it was lost.
REPEAT_INTERRUPT_S = 3.0


def _on_signal(signum: int, _frame: Any) -> None:
    global _pending_signal
    if os.getpid() != _main_pid:  # a Luigi worker process: the main process reports
        for other in (signal.SIGINT, signal.SIGTERM):
            signal.signal(other, signal.SIG_IGN)  # cleaning up now: not twice
        if not dbt_runner.running():
            os._exit(128 + signum)
        # In dbt, the interrupt is dbt's own Ctrl-C: it cancels its running queries first
        # (the worker then ends with 128 + signum, see tasks.DbtTask.work).
        raise Interrupted(signum)
    # The main process: the exception unwinds luigi.build to run_dates. Raised in a callback
    # that swallows exceptions (the at-fork hooks run as Luigi starts a worker process), it
    # would be lost: SIGALRM raises it again until run_dates has it (and _unraisable keeps
    # Python from printing the lost one).
    _pending_signal = _pending_signal or signum
    signal.setitimer(signal.ITIMER_REAL, REPEAT_INTERRUPT_S)
    raise Interrupted(_pending_signal)


def _on_alarm(_signum: int, _frame: Any) -> None:
    if _pending_signal is not None:
        signal.setitimer(signal.ITIMER_REAL, REPEAT_INTERRUPT_S)
        raise Interrupted(_pending_signal)


def _unraisable(unraisable: Any) -> None:
    if not isinstance(unraisable.exc_value, Interrupted):  # an Interrupted is raised again
        sys.__unraisablehook__(unraisable)


_CAUGHT = (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)
# What the caller had installed before the run, put back after it (main() may run inside a
# program with handlers of its own: a test runner, a scheduler embedding it).
_saved_handlers: dict[int, Any] = {}
_saved_unraisablehook: Any = None


def _catch_signals() -> None:
    global _main_pid, _pending_signal, _saved_unraisablehook
    _main_pid, _pending_signal = os.getpid(), None
    _saved_handlers.update({signum: signal.getsignal(signum) for signum in _CAUGHT})
    _saved_unraisablehook = sys.unraisablehook
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _on_signal)
    signal.signal(signal.SIGALRM, _on_alarm)
    sys.unraisablehook = _unraisable


def _ignore_signals() -> None:
    """While cleaning up after an interrupt: not twice."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    for signum in _CAUGHT:
        signal.signal(signum, signal.SIG_IGN)


def _restore_signals() -> None:
    """After the run: the handlers and the unraisable hook the caller had before it."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    for signum in _CAUGHT:
        previous = _saved_handlers.pop(signum, signal.SIG_DFL)
        signal.signal(signum, signal.SIG_DFL if previous is None else previous)
    if _saved_unraisablehook is not None:
        sys.unraisablehook = _saved_unraisablehook


def _stop_workers(timeout_s: float = 60.0) -> None:
    """Wait for Luigi's worker processes (Luigi sent them SIGTERM on its way out)."""
    deadline = time.monotonic() + timeout_s
    for child in multiprocessing.active_children():
        child.terminate()
        child.join(max(0.0, deadline - time.monotonic()))


def new_run_id(date: dt.date) -> str:
    """An attempt's id: when it started (UTC) and a random suffix; the date is beside it."""
    return f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def run_dates(dates: Sequence[dt.date], args: argparse.Namespace, label: str) -> int:
    _setup_logging()
    codes = retcode()
    try:  # every check of the run's input, before the database is even started
        validation.check_run(dates, lake=args.lake or tasks.default_lake_root(), worker_count=args.workers,
                             given_vars=args.vars)
    except validation.InvalidSetting as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        print(localdb.up(), file=sys.stderr)
        localdb.apply_connection_env()
        scheduler, scheduler_text = choose_scheduler(args)
    except (localdb.DatabaseError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    schema = runstate.target_schema()
    lock = runstate.RunLock(label, schema)
    if args.wait:
        print(f"waiting for any other nightly run on schema {schema!r} to finish…", file=sys.stderr)
    try:
        lock.acquire(wait=args.wait)
    except runstate.RunLockBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return codes.already_running
    except psycopg2.Error as exc:
        print(f"error: {database_error(exc)}", file=sys.stderr)
        return codes.unhandled_exception or 1
    lake_root = str(Path(args.lake).resolve()) if args.lake else None
    outcomes: list[Outcome] = []
    _catch_signals()
    try:
        with runstate.connection() as conn:
            runstate.ensure_meta(conn)
        if getattr(args, "force", False):
            cleared = runstate.clear_markers(schema)
            print(f"--force: forgot {cleared} finished steps of schema {schema}; starting from the beginning",
                  file=sys.stderr)
        print(f"{label}: schema {schema}, {scheduler_text}, {args.workers} workers", file=sys.stderr)
        for date in dates:
            task = tasks.nightly_run(date, lake_root=lake_root, dbt_vars=args.vars, run_id=new_run_id(date))
            _log_luigi_to(tasks.DbtTask.run_root() / date.isoformat() / "luigi.log")
            if not task.complete():
                tasks.parse_project(task)  # for each date: its vars differ
            outcomes.append(build_date(task, args.workers, scheduler))
            if outcomes[-1].code != 0:
                break  # later dates build on this one (incremental counts, PCA window)
    except Interrupted as exc:
        _ignore_signals()
        _stop_workers()
        outcomes.append(Outcome(date=dates[len(outcomes)] if len(outcomes) < len(dates) else dates[-1],
                                code=128 + exc.signum, interrupted=str(exc)))
    except psycopg2.Error as exc:
        lock.release()
        print_summary(outcomes, dates, schema, database_down=True)
        print(f"error: {database_error(exc)}", file=sys.stderr)
        return max((o.code for o in outcomes), default=0) or codes.unhandled_exception or 1
    except Exception:
        traceback.print_exc()
        return codes.unhandled_exception or 1
    finally:
        _restore_signals()
        lock.release()
        prune_artifacts(tasks.DbtTask.run_root(), keep=getattr(args, "keep_nights", DEFAULT_KEEP_NIGHTS),
                        current={d.isoformat() for d in dates})
    try:
        print_summary(outcomes, dates, schema)
    except psycopg2.Error as exc:  # the database went away after the run: say so, keep the run's code
        print(f"error: {database_error(exc)}", file=sys.stderr)
        return max((o.code for o in outcomes), default=0) or codes.unhandled_exception or 1
    return max((o.code for o in outcomes), default=0)


def database_error(exc: BaseException) -> str:
    """One line for a database error (psycopg2's message is several)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"lost the database connection ({first})" if isinstance(
        exc, (psycopg2.OperationalError, psycopg2.InterfaceError)) else first


def prune_artifacts(run_root: Path, keep: int, current: set[str]) -> None:
    """Keep the logs and artifacts of the newest `keep` nights under run_root (this run's always)."""
    if not run_root.is_dir():
        return
    others = sorted((d for d in run_root.iterdir() if d.is_dir() and _is_date(d.name) and d.name not in current),
                    key=lambda d: d.stat().st_mtime, reverse=True)
    for night in others[max(keep - len(current), 0):]:
        shutil.rmtree(night, ignore_errors=True)


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _log_luigi_to(path: Path) -> None:
    """Luigi's loggers to a file of the night (the summary reports each failure once)."""
    # In this process only (luigid configures its own logging from luigi.cfg).
    luigi.configuration.get_config().set("core", "no_configure_logging", "true")
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in ("luigi", "luigi-interface", "luigi.scheduler"):
        log = logging.getLogger(name)
        for old in list(log.handlers):
            log.removeHandler(old)
            old.close()
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def print_summary(outcomes: Sequence[Outcome], dates: Sequence[dt.date], schema: str,
                  database_down: bool = False) -> None:
    out = sys.stdout
    print("", file=out)
    for outcome in outcomes:
        if outcome.interrupted:
            print(f"== nightly run {outcome.date}: INTERRUPTED by {outcome.interrupted} (exit {outcome.code})", file=out)
            print("finished steps are kept: run the same command again to resume", file=out)
            if not database_down:
                _print_published(schema)
            continue
        state = "OK" if outcome.code == 0 else f"FAILED (exit {outcome.code})"
        print(f"== nightly run {outcome.date}: {state}", file=out)
        print(f"tasks run: {len(outcome.completed)}; skipped as already complete: "
              f"{len(outcome.already_done)}; failed: {len(outcome.failures)}; "
              f"not run: {len(outcome.not_run)}", file=out)
        for task_name, error, log in outcome.failures:
            shown_log = log and f"log: {log}" not in error  # dbt's message names it already
            print(f"FAILED {task_name}" + (f" (log {log})" if shown_log else "") + ":", file=out)
            print("    " + error.replace("\n", "\n    "), file=out)
        if outcome.not_run:
            print("not run (upstream failed): " + ", ".join(outcome.not_run), file=out)
        if outcome.other_worker:
            print(f"not run here: {len(outcome.other_worker)} steps were being run by another worker of the "
                  f"scheduler ({', '.join(outcome.other_worker[:5])}…): another run of schema {schema}?", file=out)
        if database_down:
            continue
        if outcome.code == 0 and not outcome.completed:
            print("nothing to run: every step is complete for these inputs (date, vars, lake files "
                  "unchanged since they ran); --force reruns the date from the start", file=out)
        _print_results(outcome, schema)
    for date in dates[len(outcomes):]:
        print(f"== nightly run {date}: not started (an earlier date failed)", file=out)


def _print_published(schema: str) -> None:
    published = runstate.published_run(schema)
    if published is None:
        print("the marts show no run yet (none published)")
    else:
        run_id, run_date, at = published
        print(f"the marts show run {run_id} of {run_date} (published {at:%Y-%m-%d %H:%M:%S %Z})")


def _print_results(outcome: Outcome, schema: str) -> None:
    markers = runstate.markers(schema)
    relations: list[tuple[str, str, str]] = []  # (layer, model, relation)
    for marker in markers.values():
        if marker.task_family not in COUNTED_TASKS or marker.run_date != outcome.date:
            continue
        for node in marker.nodes:
            uid, relation = node["unique_id"], node.get("relation_name")
            if uid.split(".")[0] in ("model", "seed") and relation and node["status"] == "success":
                name = uid.split(".")[2]
                layer = next((lay for prefix, lay in LAYER_PREFIXES if name.startswith(prefix)), "other")
                relations.append((layer, name, relation))
    if relations:
        counts = runstate.count_rows([r for _, _, r in relations])
        order = [lay for _, lay in LAYER_PREFIXES]
        print("rows (tables hold every date loaded so far, history tables every kept night; views are not counted):")
        for layer, name, relation in sorted(relations, key=lambda r: (order.index(r[0]) if r[0] in order else 99, r[1])):
            count = counts[relation]
            print(f"  {layer:<14} {relation:<60} {count if isinstance(count, str) else f'{count:,}'}")
        marts = [rel for lay, name, rel in relations if lay == "marts" and not name.endswith("_history")]
        if marts and outcome.code == 0:
            print("results: " + ", ".join(sorted(marts)))
    _print_published(schema)
    if outcome.code != 0:
        return  # no report or docs of an earlier run presented as this one's
    for marker in markers.values():
        if marker.run_date != outcome.date:
            continue
        if marker.details.get("report"):
            print(f"report: {marker.details['report']}")
        if marker.task_family == "GenerateDocs":
            print(f"docs: {Path(marker.details['target_path']) / 'index.html'}")


def _setup_logging() -> None:
    log = logging.getLogger("traffic_anomalies")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


# --- command line -----------------------------------------------------------------------------


def parse_var(text: str) -> tuple[str, Any]:
    """`key=value`; the value is JSON when it parses as JSON (numbers, lists, objects), else text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:  # NaN and Infinity stay text: no var takes them
        return key, json.loads(value, parse_constant=_not_a_number)
    except ValueError:
        return key, value


def _not_a_number(text: str) -> Any:
    raise ValueError(text)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def yesterday_utc() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=validation.argparse_type(validation.workers), default=DEFAULT_WORKERS,
                        help=f"parallel Luigi worker processes (default {DEFAULT_WORKERS})")
    parser.add_argument("--lake", metavar="DIR", type=validation.argparse_type(validation.lake_root),
                        help="lake root as the database server sees it "
                        "(default: $TA_LAKE_ROOT or lake/ in the project)")
    parser.add_argument("--var", dest="var_list", action="append", type=parse_var, default=[],
                        metavar="KEY=VALUE", help="extra dbt var for every step (repeatable)")
    parser.add_argument("--wait", action="store_true",
                        help="wait for a nightly run in progress instead of refusing")
    parser.add_argument("--force", action="store_true",
                        help="forget which steps are complete: rerun the date(s) from the start")
    parser.add_argument("--keep-nights", type=int, default=DEFAULT_KEEP_NIGHTS, metavar="N",
                        help="nights of logs and artifacts kept under target/nightly "
                        f"(default $TA_KEEP_NIGHTS or {DEFAULT_KEEP_NIGHTS})")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--local-scheduler", action="store_true", help="do not use luigid")
    where.add_argument("--scheduler-url", metavar="URL",
                       help=f"central scheduler (default: {scheduler_url()} when it answers)")


def _nightly_command(args: argparse.Namespace) -> int:
    args.vars = dict(args.var_list)
    date = args.date or yesterday_utc()
    return run_dates([date], args, label=f"nightly {date}")


def _backfill_command(args: argparse.Namespace) -> int:
    if args.end < args.start:
        print("error: --end is before --start", file=sys.stderr)
        return 2
    args.vars = dict(args.var_list)
    days = (args.end - args.start).days + 1
    # One date after the other: dates share tables, and each builds on the previous one.
    dates = [args.start + dt.timedelta(days=i) for i in range(days)]
    return run_dates(dates, args, label=f"backfill {args.start}..{args.end}")


def _scheduler_command(args: argparse.Namespace) -> int:
    try:
        if args.action == "up":
            print(scheduler_up(args.port))
        elif args.action == "down":
            print(scheduler_down())
        elif args.action == "serve":
            scheduler_serve(args.port, args.address, Path(args.dir) if args.dir else None)  # returns only on error
        else:
            ok, message = scheduler_status(args.port)
            print(message)
            return 0 if ok else 1
    except (RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    nightly = subparsers.add_parser("nightly", help="the nightly run for one date (Luigi + dbt)")
    nightly.add_argument("--date", type=_date, help="run date YYYY-MM-DD (default: yesterday, UTC)")
    _add_run_options(nightly)
    nightly.set_defaults(func=_nightly_command)

    backfill = subparsers.add_parser("backfill", help="the nightly run for each date of a range, in order")
    backfill.add_argument("--start", type=_date, required=True)
    backfill.add_argument("--end", type=_date, required=True, help="last date, inclusive")
    _add_run_options(backfill)
    backfill.set_defaults(func=_backfill_command)

    scheduler = subparsers.add_parser(
        "scheduler", help="the central Luigi scheduler: up | down | status, or serve (luigid in the foreground)")
    scheduler.add_argument("action", choices=["up", "down", "status", "serve"])
    scheduler.add_argument("--port", type=int, default=SCHEDULER_PORT)
    # serve only: a container's luigid listens on its own interface (published on 127.0.0.1 by compose)
    scheduler.add_argument("--address", default="127.0.0.1", help="serve: the address luigid listens on")
    scheduler.add_argument("--dir", help="serve: state, logs and luigid.cfg (default: .local/luigi or TA_LUIGI_DIR)")
    scheduler.set_defaults(func=_scheduler_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run these commands without the project CLI (until cli.py lists this module)."""
    parser = argparse.ArgumentParser(prog="traffic-anomalies")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
