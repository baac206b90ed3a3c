"""Run one dbt command through dbt's programmatic interface and read what it did.

`run_dbt` is `dbt <command> …` as a person would type it (the command line is logged first),
invoked in this process with `dbtRunner`, dbt's supported Python entry point; the per-node
results are read from the result object it returns. dbt writes its debug log (dbt.log) and
compiled SQL into the invocation's own target path; its console output goes to dbt.out beside
them, through dbt's event callbacks. Process isolation is the caller's: the nightly's Luigi
workers are processes.

`parse_project` parses the project once; a later `run_dbt` of the same project, profiles,
vars and environment runs on that manifest (`dbtRunner(manifest=…)`) instead of parsing again.
The nightly parses before Luigi starts its workers, which inherit the manifest: the project is
used as it was when the run started.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traffic_anomalies import PROJECT_DIR

# Statuses in run_results.json that mean the node did not do its job. A test that only warns
# ("warn") passes; with --warn-error dbt reports it as "fail"/"error" and it lands here.
FAILED_STATUSES = frozenset({"error", "fail", "runtime error"})
# Console levels written to dbt.out (the debug level is in dbt.log).
_CONSOLE_LEVELS = frozenset({"info", "warn", "error"})
_ERROR_START = re.compile(r"Encountered an error|Completed with \d+ error|^(Compilation|Runtime|Database|Parsing) Error")


@dataclass(frozen=True)
class NodeResult:
    """One node of one dbt invocation, as dbt reports it (run_results.json's fields)."""

    unique_id: str
    status: str
    message: str | None
    execution_time: float
    rows_affected: int | None
    relation_name: str | None
    failures: int | None

    @property
    def resource_type(self) -> str:
        return self.unique_id.split(".", 1)[0]

    @property
    def name(self) -> str:
        # model.<package>.<name>; tests carry a hash suffix: test.<package>.<name>.<hash>
        return self.unique_id.split(".")[2] if self.unique_id.count(".") >= 2 else self.unique_id

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES

    def to_json(self) -> dict[str, Any]:
        return {
            "unique_id": self.unique_id,
            "status": self.status,
            "execution_time": round(self.execution_time, 3),
            "rows_affected": self.rows_affected,
            "relation_name": self.relation_name,
            "failures": self.failures,
        }


@dataclass(frozen=True)
class DbtResult:
    """A finished dbt invocation: the command, where its artifacts are, and every node."""

    args: tuple[str, ...]
    target_path: Path
    returncode: int  # the `dbt` CLI's: 0 success, 1 a node failed, 2 an error outside the nodes
    elapsed: float
    nodes: tuple[NodeResult, ...] = field(default_factory=tuple)

    @property
    def log_file(self) -> Path:
        return self.target_path / "dbt.out"

    @property
    def failed_nodes(self) -> tuple[NodeResult, ...]:
        return tuple(n for n in self.nodes if n.failed)


class DbtError(RuntimeError):
    """dbt failed: the message is dbt's own, and `failed_nodes` names the nodes that failed."""

    def __init__(self, message: str, result: DbtResult):
        super().__init__(message)
        self.result = result

    @property
    def failed_nodes(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.result.failed_nodes)


def node_results(outcome: Any) -> tuple[NodeResult, ...]:
    """The per-node results of a dbt invocation, from the result object dbtRunner returns
    (what run_results.json would hold); none for commands without nodes (parse, docs)."""
    nodes = []
    for item in getattr(getattr(outcome, "result", None), "results", None) or ():
        node = getattr(item, "node", None)  # a RunResult; run-operation gives RunResultOutput
        status = getattr(item.status, "value", item.status)
        nodes.append(NodeResult(
            unique_id=node.unique_id if node is not None else item.unique_id,
            status=str(status),
            message=item.message,
            execution_time=float(item.execution_time or 0.0),
            rows_affected=(item.adapter_response or {}).get("rows_affected"),
            relation_name=getattr(node, "relation_name", None) if node is not None else item.relation_name,
            failures=item.failures,
        ))
    return tuple(nodes)


def build_args(
    command: Sequence[str],
    *,
    target_path: Path,
    select: Sequence[str] = (),
    exclude: Sequence[str] = (),
    dbt_vars: Mapping[str, Any] | None = None,
    macro_args: Mapping[str, Any] | None = None,
    project_dir: Path = PROJECT_DIR,
    profiles_dir: Path | None = None,
) -> list[str]:
    """The dbt command line (without the executable); kept separate so it can be printed."""
    args = [
        *command,
        "--project-dir", str(project_dir),
        "--profiles-dir", str(profiles_dir or project_dir),
        # Per invocation: parallel steps must not overwrite each other's artifacts and logs.
        "--target-path", str(target_path),
        "--log-path", str(target_path),
        "--no-send-anonymous-usage-stats",
        "--no-use-colors",
        # The results are read from dbtRunner's result: dbt would also write manifest.json
        # (~2 MB, half of a small step's time), which nothing reads.
        "--no-write-json",
    ]
    if select:
        args += ["--select", *select]
    if exclude:
        args += ["--exclude", *exclude]
    if dbt_vars:
        args += ["--vars", json.dumps(dict(dbt_vars), sort_keys=True)]
    if macro_args is not None:
        args += ["--args", json.dumps(dict(macro_args), sort_keys=True)]
    return args


# The manifest parse_project made, under what it was parsed from (see _parse_key).
_parsed: tuple[tuple, Any] | None = None
_running = False


def _parse_key(project_dir: Path, profiles_dir: Path | None, dbt_vars: Mapping[str, Any] | None) -> tuple:
    """What a parse depends on besides the project files: directories, vars, and the
    environment the profile and models read (the target schema comes from TA_SCHEMA)."""
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(("TA_", "PG", "DBT_"))))
    return (str(Path(project_dir).resolve()), str(Path(profiles_dir or project_dir).resolve()),
            json.dumps(dict(dbt_vars or {}), sort_keys=True), env)


def parse_project(
    *,
    target_path: Path,
    dbt_vars: Mapping[str, Any] | None = None,
    project_dir: Path = PROJECT_DIR,
    profiles_dir: Path | None = None,
) -> bool:
    """`dbt parse` here; later invocations with the same inputs reuse its manifest. True when
    it parsed; a failure is not raised (each step parses and reports it where it belongs)."""
    global _parsed
    _parsed = None
    # The nightly forks its Luigi workers after this parse: dbt's static parser starts native
    # threads, which a forked child would inherit the locks of but not the threads.
    args = [*build_args(("parse",), target_path=target_path, dbt_vars=dbt_vars,
                        project_dir=project_dir, profiles_dir=profiles_dir), "--no-static-parser"]
    result = _invoke(args, Path(target_path), manifest=None)
    if result.success:
        _parsed = (_parse_key(project_dir, profiles_dir, dbt_vars), result.result)
    return bool(result.success)


def running() -> bool:
    """Whether a dbt invocation is under way in this process (an interrupt then lets dbt
    cancel its queries: its own Ctrl-C handling)."""
    return _running


@contextmanager
def _environment(env: Mapping[str, str] | None) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _invoke(args: Sequence[str], target_path: Path, manifest: Any) -> Any:
    """dbtRunner on `args`, dbt's console output into target_path/dbt.out."""
    from dbt.cli.main import dbtRunner

    global _running
    target_path.mkdir(parents=True, exist_ok=True)
    with open(target_path / "dbt.out", "w") as out:
        out.write(f"$ dbt {' '.join(args)}\n")

        def console(event: Any) -> None:
            if event.info.level in _CONSOLE_LEVELS and not out.closed:  # the callback outlives out
                out.write(f"{event.info.msg}\n")

        # The console logger off (what it would print goes to dbt.out through the callback),
        # dbt.log at its usual debug level.
        runner = dbtRunner(manifest=manifest, callbacks=[console])
        _running = True
        try:
            result = runner.invoke([*args, "--log-level", "none", "--log-level-file", "debug"])
        finally:
            _running = False
        if result.exception is not None:
            out.write(f"Error: {result.exception}\n")
    if isinstance(result.exception, KeyboardInterrupt):
        raise result.exception  # dbt has cancelled its queries; the interrupt goes on
    return result


def run_dbt(
    command: Sequence[str],
    *,
    target_path: Path,
    select: Sequence[str] = (),
    exclude: Sequence[str] = (),
    dbt_vars: Mapping[str, Any] | None = None,
    macro_args: Mapping[str, Any] | None = None,
    project_dir: Path = PROJECT_DIR,
    profiles_dir: Path | None = None,
    require_nodes: bool = True,
    env: Mapping[str, str] | None = None,
) -> DbtResult:
    """Run `dbt <command> …` and return its per-node results; raise DbtError if anything failed.

    `require_nodes`: a selection that matches nothing makes dbt exit 0 with "Nothing to do";
    for a pipeline step that always means a renamed or missing model, so it is an error.
    """
    target_path = Path(target_path).resolve()
    args = build_args(command, target_path=target_path, select=select, exclude=exclude, dbt_vars=dbt_vars,
                      macro_args=macro_args, project_dir=project_dir, profiles_dir=profiles_dir)
    started = time.monotonic()
    with _environment(env):
        key = _parse_key(project_dir, profiles_dir, dbt_vars)
        manifest = _parsed[1] if _parsed is not None and _parsed[0] == key else None
        outcome = _invoke(args, target_path, manifest)
    returncode = 0 if outcome.success else (1 if outcome.exception is None else 2)
    result = DbtResult(tuple(args), target_path, returncode, time.monotonic() - started, node_results(outcome))
    check(result, require_nodes=require_nodes)
    return result


def check(result: DbtResult, *, require_nodes: bool = True) -> None:
    """Raise DbtError when dbt failed, naming the failed nodes with dbt's own messages."""
    command = "dbt " + " ".join(_short_args(result.args))
    failed = result.failed_nodes
    if failed:
        lines = [f"{command} failed ({len(failed)} of {len(result.nodes)} nodes):"]
        for node in failed:
            # run-operation errors leave the message only in the output
            message = node.message or output_tail(result.log_file)
            lines.append(f"- {node.resource_type} {node.name} [{node.status}]: {message.strip()}")
        skipped = [n.name for n in result.nodes if n.status == "skipped"]
        if skipped:
            lines.append(f"skipped because of the failure: {', '.join(skipped)}")
        lines.append(f"log: {result.log_file}")
        raise DbtError("\n".join(lines), result)
    if result.returncode != 0:
        raise DbtError(f"{command} exited with status {result.returncode}:\n"
                       f"{output_tail(result.log_file)}\nlog: {result.log_file}", result)
    if require_nodes and not result.nodes:
        raise DbtError(f"{command} selected no nodes: a model was renamed or is missing "
                       f"(log: {result.log_file})", result)


def output_tail(log_file: Path, lines: int = 25) -> str:
    """dbt's own explanation from its console output: from the first line where dbt reports
    an error, else the last `lines` lines."""
    if not log_file.exists():
        return "(no dbt output)"
    kept = [line for line in log_file.read_text(errors="replace").splitlines()[1:] if line.strip()]
    for index, line in enumerate(kept):
        if _ERROR_START.search(line):
            return "\n".join(kept[index : index + lines])
    return "\n".join(kept[-lines:])


def _short_args(args: Sequence[str]) -> list[str]:
    """The command without the options every invocation carries (for messages)."""
    with_value = {"--project-dir", "--profiles-dir", "--target-path", "--log-path"}
    short: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in with_value:
            skip = True
        elif arg not in ("--no-send-anonymous-usage-stats", "--no-use-colors", "--no-write-json"):
            short.append(arg)
    return short
