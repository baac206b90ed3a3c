"""The nightly run as a Luigi DAG: each task is one dbt invocation over one run date.

    StageLake → LoadSeeds → BuildStaging → BuildPcaInput → PcaHours → BuildMarts
                                                               → GenerateDocs, BuildReport → NightlyRun

Completion is a Target in the database (`runstate.StepTarget`, returned by output()): one row
per step of a target schema, since the steps' tables are the schema's, whatever date built
them. A step is complete when its row was written from the same inputs (run date, dbt vars,
the lake files of days up to the run date: names, sizes, mtimes), its upstream steps are
complete, and its row is newer than theirs (make's rule). So a rerun after a crash redoes
exactly the missing steps, a run for another date makes the next run of this one start over,
and whatever was rebuilt upstream is rebuilt downstream too.

Task ids carry the database, the target schema, the lake and the project directory: runs of two
schemas or two checkouts on one central scheduler never share task state, and the scheduler's
pages say what each run is. The 24 hours of the PCA are one step, one dbt invocation that runs
them in parallel on dbt's threads: a step per hour cost a dbt start-up (graph, relation cache,
on-run-start) each, more than the PCA itself on a small lake. A running dbt task shows its
command and log path as its status message (the log as its tracking URL), then what it did.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import importlib
import importlib.util
import inspect
import json
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from traffic_anomalies import PROJECT_DIR

LUIGI_CONFIG = PROJECT_DIR / "luigi.cfg"
# Before `import luigi`: Luigi reads its config (e.g. [core] autoload_range) at import time.
os.environ.setdefault("LUIGI_CONFIG_PATH", str(LUIGI_CONFIG))

import luigi  # noqa: E402
import psycopg2  # noqa: E402
import luigi.configuration  # noqa: E402
from luigi.configuration.cfg_parser import LuigiConfigParser  # noqa: E402

from traffic_anomalies import runstate  # noqa: E402
from traffic_anomalies.dbt import DbtError, DbtResult, run_dbt  # noqa: E402
from traffic_anomalies.dbt import parse_project as parse_dbt_project  # noqa: E402

logger = logging.getLogger("traffic_anomalies.nightly")

REPORT_MODULE = "traffic_anomalies.report"


@dataclass(frozen=True)
class Step:
    """One dbt invocation."""

    command: tuple[str, ...]
    selector: str | None = None  # a selector of selectors.yml: the step's whole selection
    macro_args: Mapping[str, Any] | None = None  # run-operation only; lake_root is added
    require_nodes: bool = True  # an empty selection means a renamed model: fail loudly
    shared_target: bool = False  # write into target/ itself (docs) instead of a private dir


# The one table of what each task asks dbt to do. What each step selects lives in selectors.yml
# (`dbt build --selector nightly_marts` from the command line does what BuildMarts does).
STEPS: dict[str, Step] = {
    "StageLake": Step(("run-operation", "stage_external_sources"), macro_args={}),
    "LoadSeeds": Step(("seed",), selector="nightly_seeds"),
    "BuildStaging": Step(("build",), selector="nightly_staging"),
    "BuildPcaInput": Step(("build",), selector="nightly_pca_input"),
    # The 24 independent hours on dbt's threads (TA_THREADS): a failing hour fails alone,
    # named, and the others still finish.
    "PcaHours": Step(("build",), selector="nightly_pca_hours"),
    # The 24 hours' outputs stacked, the anomaly models, the marts' history tables, then
    # dim_runs (publishing the run) and the marts' views.
    "BuildMarts": Step(("build",), selector="nightly_marts"),
    "GenerateDocs": Step(("docs", "generate"), selector="nightly_docs", require_nodes=False, shared_target=True),
}


def use_project_config() -> None:
    """Make sure luigi.cfg of the project is read even if luigi was imported before us."""
    if str(LUIGI_CONFIG) not in LuigiConfigParser._config_paths and LUIGI_CONFIG.exists():
        luigi.configuration.add_config_path(str(LUIGI_CONFIG))
    config = luigi.configuration.get_config()
    # Settings that differ per machine come from the environment (the cfg keeps defaults).
    for env_name, section, option in (
        ("LUIGI_EMAIL_RECEIVER", "email", "receiver"),
        ("LUIGI_EMAIL_SENDER", "email", "sender"),
        ("LUIGI_SMTP_HOST", "smtp", "host"),
        ("LUIGI_SMTP_PORT", "smtp", "port"),
    ):
        if os.environ.get(env_name):
            config.set(section, option, os.environ[env_name])


use_project_config()


def target_root() -> Path:
    """Where dbt artifacts go (TA_DBT_TARGET_ROOT moves them, e.g. for tests)."""
    return Path(os.environ.get("TA_DBT_TARGET_ROOT") or PROJECT_DIR / "target").resolve()


def default_lake_root() -> str:
    return os.environ.get("TA_LAKE_ROOT") or str(PROJECT_DIR / "lake")


@functools.cache
def report_available() -> bool:
    """A report step exists once someone writes traffic_anomalies.report.build_report.

    Decided once per process (and inherited by forked workers): the DAG must not change
    shape in the middle of a run.
    """
    if importlib.util.find_spec(REPORT_MODULE) is None:
        return False
    return hasattr(importlib.import_module(REPORT_MODULE), "build_report")


class NightlyTask(luigi.Task):
    """A step of the nightly run for one date, complete when its database marker says so."""

    date: dt.date = luigi.DateParameter()
    # Where the work lands: part of the task id, so two schemas or checkouts sharing a central
    # scheduler never see each other's tasks (empty: this process's database and schema).
    database: str = luigi.Parameter(default="")
    schema: str = luigi.Parameter(default="")
    project: str = luigi.Parameter(default="")
    # The lake read: part of the id too, so the scheduler's pages say which lake a run reads.
    lake_root: str | None = luigi.OptionalParameter(default=None)
    # Not part of the task id (the id names the work, the fingerprint checks how it was done).
    dbt_vars: Mapping[str, Any] = luigi.DictParameter(default={}, significant=False)
    # The attempt: the mart rows it writes carry it (dbt var run_id); not an input of the work.
    run_id: str | None = luigi.OptionalParameter(default=None, significant=False)
    # lake_files_digest() as the run listed it when it started (None: list it now).
    lake_files: str | None = luigi.OptionalParameter(default=None, significant=False)

    def vars(self) -> dict[str, Any]:
        extra = json.loads(luigi.DictParameter().serialize(self.dbt_vars))
        run = {"run_id": self.run_id} if self.run_id else {}
        return {"run_date": self.date.isoformat(), "lake_root": self.lake_root or default_lake_root(), **extra, **run}

    def target_schema(self) -> str:
        return self.schema or runstate.target_schema()

    def state_key(self) -> str:
        """The step's row in the completion table: one per step, whatever the date."""
        return self.task_family

    def fingerprint(self) -> str:
        """The inputs the step's tables are built from: another date, other vars (another lake,
        a forced parameter) or changed lake files is other work."""
        inputs = {k: v for k, v in self.vars().items() if k != "run_id"}
        inputs["lake_files"] = self.lake_files or lake_files_digest(inputs["lake_root"], self.date)
        return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]

    def output(self) -> runstate.StepTarget:
        return runstate.StepTarget(self.target_schema(), self.state_key(), self.fingerprint(),
                                   upstream=tuple(upstream_targets(self)))

    def run(self) -> None:
        target = self.output()
        target.clear()  # from here on the old marker would lie
        started = time.monotonic()
        nodes, details = self.work()
        # Only now, with dbt's work committed, is the task done.
        target.write(
            task_id=self.task_id,
            task_family=self.task_family,
            run_date=self.date,
            run_id=self.run_id,
            elapsed_s=time.monotonic() - started,
            nodes=nodes,
            details=details,
        )

    def work(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        raise NotImplementedError

    def on_failure(self, exception: BaseException) -> str:
        # What the scheduler, the summary and the failure e-mail show: dbt's own message.
        if isinstance(exception, DbtError):
            return f"{self} failed:\n{exception}"
        if isinstance(exception, (psycopg2.OperationalError, psycopg2.InterfaceError)):
            first = (str(exception).strip().splitlines() or [type(exception).__name__])[0]
            return f"{self} failed: lost the database connection ({first})"  # no traceback
        return super().on_failure(exception)


def upstream_targets(task: luigi.Task) -> list[runstate.StepTarget]:
    """The completion targets of a task's upstream steps (make's rule compares with them)."""
    return [up.output() for up in luigi.task.flatten(task.requires()) if isinstance(up, NightlyTask)]


def lake_files_digest(lake_root: str, run_date: dt.date) -> str:
    """Names, sizes and modification times of the lake files of days up to the run date (what
    a run for that date reads). A lake this machine cannot see (a remote server's) lists as
    empty: then only the date and vars tell runs apart. nightly_run() lists it once a run."""
    digest = hashlib.sha256()
    flows = Path(lake_root) / "flows"
    for day_dir in sorted(flows.glob("dt=*")) if flows.is_dir() else []:
        if day_dir.name.removeprefix("dt=") > run_date.isoformat():
            continue
        for path in sorted(day_dir.rglob("*")):
            try:
                stat = path.stat()
            except OSError:
                continue
            if path.is_file():
                digest.update(f"{path.relative_to(flows)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


class DbtTask(NightlyTask):
    """A task whose work is the dbt step of the same name in STEPS."""

    step_name: ClassVar[str]
    project_dir: ClassVar[Path] = PROJECT_DIR

    @property
    def step(self) -> Step:
        return STEPS[self.step_name]

    def target_path(self) -> Path:
        if self.step.shared_target:
            return target_root()
        return self.run_root() / self.date.isoformat() / self.run_label()

    @staticmethod
    def run_root() -> Path:
        return target_root() / "nightly" / runstate.target_schema()

    def run_label(self) -> str:
        return self.task_family

    def status(self, message: str) -> None:
        """What the scheduler's page shows for the task (set only while a worker runs it)."""
        if self.set_status_message:
            self.set_status_message(message)

    def work(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        step = self.step
        macro_args = None
        if step.macro_args is not None:
            macro_args = {"lake_root": self.vars()["lake_root"], **step.macro_args}
        command = step.command
        if step.selector:
            command = (*command, "--selector", step.selector)
        log = self.target_path() / "dbt.out"
        logger.info("%s: dbt %s started", self.run_label(), " ".join(command))
        self.status(f"dbt {' '.join(command)} running; log {log}")
        if self.set_tracking_url:
            self.set_tracking_url(log.as_uri())
        try:
            result: DbtResult = run_dbt(
                command,
                target_path=self.target_path(),
                dbt_vars=self.vars(),
                macro_args=macro_args,
                project_dir=self.project_dir,
                require_nodes=step.require_nodes,
            )
        except DbtError as exc:
            self.status(f"dbt failed ({', '.join(exc.failed_nodes) or 'see the log'}); log {log}")
            raise
        except KeyboardInterrupt as stop:
            # dbt has cancelled its queries. In a Luigi worker process of its own the task ends
            # here (the main process reports the interrupt); an exit, not an interrupt, so that
            # the process ends quietly and releases its semaphores.
            if multiprocessing.parent_process() is not None:
                raise SystemExit(128 + getattr(stop, "signum", signal.SIGINT)) from None
            raise
        warned = sum(1 for n in result.nodes if n.status == "warn")
        self.status(f"done in {result.elapsed:.1f} s: {len(result.nodes)} nodes"
                    + (f", {warned} tests warned" if warned else "") + f"; log {log}")
        logger.info("%s: done in %.1fs (%d nodes, log %s)", self.run_label(), result.elapsed, len(result.nodes), log)
        return [n.to_json() for n in result.nodes], {"target_path": str(result.target_path)}


def parse_project(run: "NightlyRun") -> None:
    """Parse the project once in this process before Luigi starts its workers: they inherit
    the manifest and every step runs on it instead of parsing again (see dbt.py)."""
    step = run.clone(StageLake)
    target = step.run_root() / run.date.isoformat() / "Parse"  # pruned with the night's logs
    if not parse_dbt_project(target_path=target, dbt_vars=step.vars()):
        logger.warning("dbt parse failed before the run (log %s); the steps will report it", target / "dbt.out")


class StageLake(DbtTask):
    step_name = "StageLake"


class LoadSeeds(DbtTask):
    step_name = "LoadSeeds"

    def requires(self) -> luigi.Task:
        return self.clone(StageLake)


class BuildStaging(DbtTask):
    step_name = "BuildStaging"

    def requires(self) -> luigi.Task:
        return self.clone(LoadSeeds)


class BuildPcaInput(DbtTask):
    step_name = "BuildPcaInput"

    def requires(self) -> luigi.Task:
        return self.clone(BuildStaging)


class PcaHours(DbtTask):
    step_name = "PcaHours"

    def requires(self) -> luigi.Task:
        return self.clone(BuildPcaInput)


class BuildMarts(DbtTask):
    step_name = "BuildMarts"

    def requires(self) -> luigi.Task:
        return self.clone(PcaHours)


class GenerateDocs(DbtTask):
    step_name = "GenerateDocs"

    def requires(self) -> luigi.Task:
        return self.clone(BuildMarts)


class BuildReport(NightlyTask):
    """The human-readable report, by traffic_anomalies.report.build_report(date) -> Path."""

    def requires(self) -> luigi.Task:
        return self.clone(BuildMarts)

    def work(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        build_report = importlib.import_module(REPORT_MODULE).build_report
        options = {}
        if "output_root" in inspect.signature(build_report).parameters:
            options["output_root"] = target_root()  # next to the docs, wherever those go
        path = Path(build_report(self.date, **options))
        logger.info("BuildReport: %s", path)
        return [], {"report": str(path)}


class NightlyRun(luigi.WrapperTask):
    """Everything for one date: marts, docs and (when it exists) the report."""

    date: dt.date = luigi.DateParameter()
    database: str = luigi.Parameter(default="")
    schema: str = luigi.Parameter(default="")
    project: str = luigi.Parameter(default="")
    lake_root: str | None = luigi.OptionalParameter(default=None)
    dbt_vars: Mapping[str, Any] = luigi.DictParameter(default={}, significant=False)
    run_id: str | None = luigi.OptionalParameter(default=None, significant=False)
    lake_files: str | None = luigi.OptionalParameter(default=None, significant=False)

    def requires(self) -> list[luigi.Task]:
        steps: list[luigi.Task] = [self.clone(BuildMarts), self.clone(GenerateDocs)]
        if report_available():
            steps.append(self.clone(BuildReport))
        return steps


def identity() -> dict[str, str]:
    """This process's database, target schema and project: the task-id parameters."""
    where = f"{os.environ.get('PGHOST', '')}:{os.environ.get('PGPORT', '')}/{os.environ.get('PGDATABASE', '')}"
    return {"database": where, "schema": runstate.target_schema(), "project": str(PROJECT_DIR)}


def nightly_run(date: dt.date, *, lake_root: str | None = None, dbt_vars: Mapping[str, Any] | None = None,
                run_id: str | None = None) -> NightlyRun:
    """The run for a date in this process's database, schema and project; the lake files are
    listed once here, for every step's fingerprint."""
    lake_root = lake_root or default_lake_root()
    lake_files = lake_files_digest(lake_root, date)
    return NightlyRun(date=date, lake_root=lake_root, dbt_vars=dict(dbt_vars or {}), run_id=run_id,
                      lake_files=lake_files, **identity())
