"""Run one dbt command and read what it did from its run_results.json.

Each dbt command runs in a process of its own, never in the caller's: a fresh process per
invocation (dbt keeps global state: flags, adapter registry, log handlers), a crash or a kill
of dbt cannot take the Luigi worker down with it, a SIGKILL to the process group still reaches
dbt, and the command line we log is exactly the one a person would type to reproduce a failure.

Two ways to get that process. By default the `dbt` CLI is started as a subprocess, which costs
~2-3 s of Python start-up and imports per step. Once `preload()` has imported dbt (the nightly
run does so before Luigi starts its workers), the step process is a `fork()` of the caller
instead, running dbt's own CLI entry point on the same arguments: same process isolation, same
exit codes, same output file, without paying the imports again for each of the ~30 steps of a
night. When `warm_up()` has parsed the project too, a forked step with the same project files,
vars and environment runs on that manifest instead of parsing again. `TA_DBT_SUBPROCESS=1`
forces the subprocess.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
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


def preload() -> None:
    """Import dbt and its postgres adapter in this process, so that forked steps start warm."""
    import dbt.adapters.postgres  # noqa: F401
    import dbt.cli.main  # noqa: F401


def warm_up(
    *,
    target_path: Path,
    dbt_vars: Mapping[str, Any] | None = None,
    project_dir: Path = PROJECT_DIR,
    profiles_dir: Path | None = None,
) -> bool:
    """`dbt parse` in this process, before steps are forked from it; True when it parsed.

    Besides the imports, a dbt process spends ~2 s building the (de)serialisers and JSON
    schemas of its artifact classes on first use; done once here, every forked step inherits
    them. The parse also leaves a fresh partial-parse file in `target_path`. A failure is not
    raised: the steps parse again and report it where it belongs.
    """
    preload()
    from dbt.cli.main import dbtRunner

    target_path = Path(target_path).resolve()
    target_path.mkdir(parents=True, exist_ok=True)
    args = build_args(("parse",), target_path=target_path, dbt_vars=dbt_vars,
                      project_dir=project_dir, profiles_dir=profiles_dir)
    # dbt's static parser is a Rust library that starts a thread pool on first use, and a
    # process with native threads must not fork (see use_fork): here the Jinja parser does.
    args.append("--no-static-parser")
    with open(target_path / "dbt.out", "w") as out:
        out.write(f"$ dbt {' '.join(args)}\n")
        out.flush()
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = out  # dbt's console output goes to the file, as for a step
        try:
            result = dbtRunner().invoke([*args, "--quiet"])
        finally:
            sys.stdout, sys.stderr = saved
            from dbt.events.logging import cleanup_event_logger

            cleanup_event_logger()  # no dbt log handler may outlive this file
    global _warm_manifest
    _warm_manifest = (_parse_key(args, os.environ), result.result) if result.success else None
    if result.success:
        precompile_macros(result.result)
    return result.success


def precompile_macros(manifest: Any) -> None:
    """Compile the Jinja template of every macro of `manifest` in this process.

    dbt keeps compiled macro templates in a process-wide cache keyed by the macro's text, and
    forked steps inherit it: each step would otherwise compile the ~90 macros it uses itself
    (~0.45 s, a third of a small step), here all ~560 are compiled once (~1 s).
    """
    try:
        from dbt_common.clients.jinja import template_cache
    except ImportError:  # another dbt layout: the steps compile what they use, as before
        return
    for macro in getattr(manifest, "macros", {}).values():
        try:
            template_cache.get_node_template(macro)
        except Exception:  # noqa: BLE001 - a macro that does not compile fails where it is used
            continue


# The manifest the warm-up parsed and what it was parsed from. A forked step whose project
# files, project and profiles directories, vars and environment are the same runs on it
# (dbt's programmatic runner with a manifest) instead of loading the partial-parse file and
# checking every file again (~1 s a step); any difference and the step parses as usual.
_warm_manifest: tuple[tuple, Any] | None = None
_PARSE_OPTIONS = ("--project-dir", "--profiles-dir", "--vars", "--target", "--profile")
_NOT_PROJECT_FILES = frozenset({"target", "logs", "lake", "dbt_packages", "bench"})


def _parse_key(args: Sequence[str], env: Mapping[str, str]) -> tuple:
    """What a parse of the project depends on, for the command line `args` run with `env`."""
    options = tuple(args[args.index(o) + 1] if o in args else None for o in _PARSE_OPTIONS)
    project_dir = Path(options[0] or ".").resolve()
    files = []
    for folder, folders, names in os.walk(project_dir):
        if folder == str(project_dir):  # not what dbt writes or reads as data
            folders[:] = [f for f in folders if not f.startswith(".") and f not in _NOT_PROJECT_FILES]
        for name in names:
            if name.endswith((".sql", ".yml", ".yaml", ".csv", ".md", ".py")):
                stat = os.stat(os.path.join(folder, name))
                files.append((folder, name, stat.st_mtime_ns, stat.st_size))
    variables = tuple(sorted((k, v) for k, v in env.items()
                             if k.startswith(("TA_", "PG", "DBT_")) and k != "DBT_SEND_ANONYMOUS_USAGE_STATS"))
    return options, variables, tuple(sorted(files))


def subprocess_only() -> bool:
    """TA_DBT_SUBPROCESS=1 (or a system without fork): every step is a new `dbt` CLI process."""
    return not hasattr(os, "fork") or os.environ.get("TA_DBT_SUBPROCESS", "") not in ("", "0")


def can_fork() -> bool:
    """Whether steps may be forked from this process at all (dbt imported or not).

    Never from a process that runs threads of a native library (a Rust or C thread pool): the
    child would have its locks but not its threads, and could wait for them forever.
    """
    return not subprocess_only() and native_threads() == 0


def use_fork() -> bool:
    """Fork the step process when dbt is already imported here (see the module docstring)."""
    return "dbt.cli.main" in sys.modules and can_fork()


def native_threads() -> int:
    """Threads of this process that Python did not start (0 where /proc is not available)."""
    try:
        return max(0, len(os.listdir("/proc/self/task")) - threading.active_count())
    except OSError:
        return 0


# Commands whose only artifact the caller reads is run_results.json. On a reused manifest they
# run with --no-write-json and the results are written here: dbt would also serialise the whole
# manifest (~2 MB of JSON, ~0.45 s, a third of a small step), which nothing reads.
_RESULTS_ONLY = frozenset({"build", "run", "test", "seed", "run-operation"})


def _invoke_with_manifest(args: Sequence[str], manifest: Any) -> int:
    """dbt `args` on an already parsed manifest; the `dbt` CLI's exit status (0 success,
    1 a node failed, 2 an error), with click's message for a usage error as the CLI prints it."""
    from dbt.cli.exceptions import DbtUsageException
    from dbt.cli.main import dbtRunner

    args = list(args)
    results_only = bool(args) and args[0] in _RESULTS_ONLY and "--target-path" in args
    if results_only:
        args.append("--no-write-json")
    result = dbtRunner(manifest=manifest).invoke(args)
    if results_only and hasattr(result.result, "write"):
        result.result.write(str(Path(args[args.index("--target-path") + 1]) / "run_results.json"))
    if result.success:
        return 0
    if isinstance(result.exception, DbtUsageException):
        print(f"Error: {result.exception}", file=sys.stderr)
    return 1 if result.exception is None else 2


def _run_forked(args: Sequence[str], *, cwd: Path, env: Mapping[str, str], out: Any) -> int:
    """Run dbt's CLI entry point on `args` in a forked child; return its exit status."""
    for stream in (sys.stdout, sys.stderr, out):
        stream.flush()  # or the child would write the parent's buffered text a second time
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 2  # dbt's own status for an unhandled error
        global _is_dbt_child
        _is_dbt_child = True
        _children.clear()
        try:
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(env)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(out.fileno(), 1)
            os.dup2(out.fileno(), 2)
            # New streams on those descriptors: the inherited sys.stdout may not write to fd 1
            # (a test runner's capture, a redirected logger).
            sys.stdout = sys.__stdout__ = open(1, "w", buffering=1, closefd=False)
            sys.stderr = sys.__stderr__ = open(2, "w", buffering=1, closefd=False)
            sys.argv = ["dbt", *args]  # what dbt logs as its invocation
            if _warm_manifest is not None and _warm_manifest[0] == _parse_key(args, env):
                code = _invoke_with_manifest(args, _warm_manifest[1])
            else:
                from dbt.cli.main import cli

                cli()  # click ends it with SystemExit(status), as the `dbt` script does
                code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
        except BaseException:  # noqa: BLE001 - reported in the output file, status 2
            traceback.print_exc()
        finally:
            try:
                # What a normal exit would do for dbt's multiprocessing locks (the parent's
                # finalizers check their pid and stay put); then the output.
                mp_util = sys.modules.get("multiprocessing.util")
                if mp_util is not None:
                    mp_util._run_finalizers(0)
                    mp_util._run_finalizers()
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                # _exit: no atexit handlers, no destructors of the parent's objects (its database
                # connections, Luigi's worker state) run in the child.
                os._exit(code)
    _children.add(pid)
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        _children.discard(pid)
    return os.waitstatus_to_exitcode(status)


# The dbt processes this process forked and is waiting for, and whether this process is one.
_children: set[int] = set()
_is_dbt_child = False


def in_dbt_child() -> bool:
    return _is_dbt_child


def stop_children(grace_s: float = 20.0) -> None:
    """On an interrupt: stop the dbt processes we started and reap them. SIGINT makes dbt
    cancel its running queries (its own Ctrl-C handling); SIGKILL after `grace_s`."""
    for pid in list(_children):
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            _children.discard(pid)
    deadline = time.monotonic() + grace_s
    while _children:
        for pid in list(_children):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                _children.discard(pid)
            elif time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


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
        if use_fork():
            returncode = _run_forked(args, cwd=project_dir, env=child_env, out=out)
        else:
            returncode = subprocess.run(
                [dbt_executable(), *args],
                cwd=project_dir,
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            ).returncode
    elapsed = time.monotonic() - started
    nodes = parse_run_results(run_results) if run_results.exists() else ()
    result = DbtResult(tuple(args), target_path, returncode, elapsed, nodes)
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
