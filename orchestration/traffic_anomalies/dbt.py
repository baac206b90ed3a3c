"""Run one dbt command and read what it did from its run_results.json.

We run the `dbt` CLI as a subprocess rather than `dbtRunner` in-process: each invocation gets
a fresh interpreter (dbt keeps global state: flags, adapter registry, log handlers), a crash or
a kill of dbt cannot take the Luigi worker down with it, a SIGKILL to the process group still
reaches dbt, and the command we run is exactly the one a person would type to reproduce a
failure. The price is ~3 s of importing dbt per step, small next to the SQL it runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traffic_anomalies import PROJECT_DIR

# Statuses in run_results.json that mean the node did not do its job. A test that only warns
# ("warn") passes; with --warn-error dbt reports it as "fail"/"error" and it lands here.
FAILED_STATUSES = frozenset({"error", "fail", "runtime error"})

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ERROR_START = re.compile(r"Encountered an error|Completed with \d+ error|^(Compilation|Runtime|Database|Parsing) Error")


@dataclass(frozen=True)
class NodeResult:
    """One node of one dbt invocation, as run_results.json reports it."""

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
    returncode: int
    elapsed: float
    nodes: tuple[NodeResult, ...] = field(default_factory=tuple)

    @property
    def log_file(self) -> Path:
        return self.target_path / "dbt.out"

    @property
    def failed_nodes(self) -> tuple[NodeResult, ...]:
        return tuple(n for n in self.nodes if n.failed)

    def by_name(self) -> dict[str, NodeResult]:
        return {n.name: n for n in self.nodes}


class DbtError(RuntimeError):
    """dbt failed: the message is dbt's own, and `failed_nodes` names the nodes that failed."""

    def __init__(self, message: str, result: DbtResult):
        super().__init__(message)
        self.result = result

    @property
    def failed_nodes(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.result.failed_nodes)


def parse_run_results(path: Path) -> tuple[NodeResult, ...]:
    """The per-node results of a run_results.json file."""
    data = json.loads(Path(path).read_text())
    nodes = []
    for item in data.get("results", []):
        adapter_response = item.get("adapter_response") or {}
        nodes.append(
            NodeResult(
                unique_id=item["unique_id"],
                status=str(item["status"]),
                message=item.get("message"),
                execution_time=float(item.get("execution_time") or 0.0),
                rows_affected=adapter_response.get("rows_affected"),
                relation_name=item.get("relation_name"),
                failures=item.get("failures"),
            )
        )
    return tuple(nodes)


def dbt_executable() -> str:
    """The dbt next to this interpreter (the project's venv), else the one on PATH."""
    beside = Path(sys.executable).parent / "dbt"
    if beside.exists():
        return str(beside)
    found = shutil.which("dbt")
    if found is None:
        raise FileNotFoundError("the dbt command was found neither next to Python nor on PATH")
    return found


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
        # Per invocation: parallel runs must not overwrite each other's manifest/run_results.
        "--target-path", str(target_path),
        "--log-path", str(target_path),
        "--no-use-colors",
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
    target_path.mkdir(parents=True, exist_ok=True)
    run_results = target_path / "run_results.json"
    run_results.unlink(missing_ok=True)  # never read a previous invocation's results
    args = build_args(
        command,
        target_path=target_path,
        select=select,
        exclude=exclude,
        dbt_vars=dbt_vars,
        macro_args=macro_args,
        project_dir=project_dir,
        profiles_dir=profiles_dir,
    )
    child_env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **(env or {})}
    started = time.monotonic()
    # Output goes to a file, not a pipe: nothing to drain, and it stays for post-mortems.
    with open(target_path / "dbt.out", "w") as out:
        out.write(f"$ dbt {' '.join(args)}\n")
        out.flush()
        completed = subprocess.run(
            [dbt_executable(), *args],
            cwd=project_dir,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    elapsed = time.monotonic() - started
    nodes = parse_run_results(run_results) if run_results.exists() else ()
    result = DbtResult(tuple(args), target_path, completed.returncode, elapsed, nodes)
    check(result, require_nodes=require_nodes)
    return result


def check(result: DbtResult, *, require_nodes: bool = True) -> None:
    """Raise DbtError when dbt failed, naming the failed nodes with dbt's own messages."""
    command = "dbt " + " ".join(_short_args(result.args))
    failed = result.failed_nodes
    if failed:
        lines = [f"{command} failed ({len(failed)} of {len(result.nodes)} nodes):"]
        tail = None
        for node in failed:
            message = node.message
            if not message:  # run-operation errors leave the message only in the output
                tail = tail or output_tail(result.log_file)
                message = tail
            lines.append(f"- {node.resource_type} {node.name} [{node.status}]: {message.strip()}")
        skipped = [n.name for n in result.nodes if n.status == "skipped"]
        if skipped:
            lines.append(f"skipped because of the failure: {', '.join(skipped)}")
        lines.append(f"log: {result.log_file}")
        raise DbtError("\n".join(lines), result)
    if result.returncode != 0:
        raise DbtError(
            f"{command} exited with status {result.returncode}:\n"
            f"{output_tail(result.log_file)}\nlog: {result.log_file}",
            result,
        )
    if require_nodes and not result.nodes:
        raise DbtError(
            f"{command} selected no nodes: a model was renamed or is missing "
            f"(log: {result.log_file})",
            result,
        )


def output_tail(log_file: Path, lines: int = 25) -> str:
    """dbt's own explanation from its console output (colours and timestamps removed).

    From the first line where dbt reports an error, else the last `lines` lines.
    """
    if not log_file.exists():
        return "(no dbt output)"
    text = _ANSI.sub("", log_file.read_text(errors="replace"))
    kept = [re.sub(r"^\d\d:\d\d:\d\d\s+", "", line) for line in text.splitlines() if line.strip()]
    for index, line in enumerate(kept):
        if _ERROR_START.search(line):
            return "\n".join(kept[index : index + lines])
    return "\n".join(kept[-lines:])


def _short_args(args: Sequence[str]) -> list[str]:
    """The command without the path options every invocation carries (for messages)."""
    noisy = {"--project-dir", "--profiles-dir", "--target-path", "--log-path"}
    short: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in noisy:
            skip = True
            continue
        if arg == "--no-use-colors":
            continue
        short.append(arg)
    return short
