"""dbt builds inside the Dagster run's process instead of one `dbt` subprocess per stage.

A subprocess per stage paid, three times a run, for importing dbt (~3.5 s here) and for
loading the project (a partial parse when the vars are unchanged, a full parse when the
as-of date moved: every day). In-process, dbt is imported once, the project is parsed once
per run (the three stages share the run's vars), and each build receives that manifest.
Each build compiles every node it runs from the node's raw SQL with the build's vars, so a
parsed manifest is never reused across runs (the as-of date, and what `is_incremental()`
sees, belong to one run).

The Dagster events are dagster-dbt's own (`DbtCoreCliEventMessage.to_default_asset_events`)
made from dbt's structured events, so materialisations and asset checks look as they did from
the subprocess; they are emitted when a stage's build has finished (dbt's log lines show its
progress meanwhile)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator
from dagster_dbt.asset_utils import (
    extract_runtime_selection_from_args,
    get_updated_cli_invocation_params_for_context,
)
from dagster_dbt.core.dbt_cli_event import DbtCoreCliEventMessage

# dbt's events that become Dagster events (a model, seed, snapshot or test finished)
RESULT_EVENTS = frozenset({"LogModelResult", "LogSeedResult", "LogSnapshotResult",
                           "LogTestResult"})

# the current run's parsed manifest, with what it was parsed for (run id, project dir,
# target path, vars): one run at a time in a process
_manifest: tuple[tuple[str, str, str, str], Any] | None = None

# dbt re-reads every file when the vars or the profile of a parse differ from the last
# one's. The as-of date moves every day; the warehouse dir and the engine settings shape
# only the profile (the database path, memory limit, threads), and the warehouse differs
# from one warehouse to the next. Nothing in the project reads them while parsing (only
# when a build compiles a node, or connects, with the build's own vars;
# tests/test_dbt_in_process.py parses with other values and compares), so the parse
# always uses these, and one parse serves every day and every warehouse of the machine.
PARSE_AS_OF = "2000-01-01"
PARSE_FIXED_VARS = {"as_of_date": PARSE_AS_OF, "warehouse_dir": "/ulm-parse-only",
                    "engine_memory_limit": "1GB", "engine_dbt_threads": 1,
                    "engine_checkpoint_threshold": "1GB"}

# dbt's saved parse in a target folder
PARTIAL_PARSE_FILE = "partial_parse.msgpack"


class DbtInProcessError(RuntimeError):
    """dbt could not start the build (the project does not parse, the profile is wrong)."""


def vars_argument(args: Sequence[str]) -> str:
    """The JSON given to --vars (empty object when there is none)."""
    args = list(args)
    if "--vars" in args:
        return args[args.index("--vars") + 1]
    return "{}"


def parse_vars(vars_json: str) -> str:
    """The vars to parse with: the build's, with those in PARSE_FIXED_VARS fixed."""
    values = json.loads(vars_json)
    values.update({k: v for k, v in PARSE_FIXED_VARS.items() if k in values})
    return json.dumps(values, sort_keys=True)


def parse_cache(project_dir: Path) -> Path:
    """Where the machine keeps its last parse of this project (a folder per checkout):
    `ULM_CACHE_DIR/dbt-parse/<project>`, beside the CLV models' compiled code."""
    from ml.clv import cache_root

    digest = hashlib.sha256(str(Path(project_dir).resolve()).encode()).hexdigest()[:16]
    return cache_root() / "dbt-parse" / digest


def seed_partial_parse(target_path: Path, cache: Path) -> bool:
    """Give a target folder without a saved parse (a new warehouse) the machine's last one:
    dbt then reparses only what differs (the whole project when its vars, profile or dbt
    version differ: it checks). Returns whether it copied one. A cache that cannot be read
    only costs the full parse."""
    saved, cached = target_path / PARTIAL_PARSE_FILE, cache / PARTIAL_PARSE_FILE
    if saved.exists() or not cached.exists():
        return False
    try:
        shutil.copyfile(cached, saved)
    except OSError:
        saved.unlink(missing_ok=True)
        return False
    return True


def keep_partial_parse(target_path: Path, cache: Path) -> None:
    """Store this parse as the machine's last (written beside, then renamed: a run reading
    it meanwhile sees the old file or the new one, never half of one)."""
    saved = target_path / PARTIAL_PARSE_FILE
    if not saved.exists():
        return
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f".{PARTIAL_PARSE_FILE}.{os.getpid()}.tmp"
        shutil.copyfile(saved, tmp)
        os.replace(tmp, cache / PARTIAL_PARSE_FILE)
    except OSError:
        pass  # a read-only or full cache only costs the next new warehouse a full parse


def release_duckdb() -> None:
    """Close dbt-duckdb's database handle. dbt-duckdb keeps one per process until exit; the
    steps after a build open the same file with their own settings, which DuckDB refuses
    while another handle with other settings is open."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
        if env is not None:
            env.close()


def parsed_manifest(run_id: str, project_dir: Path, profiles_dir: Path, target_path: Path,
                    vars_json: str):
    """The run's dbt manifest: `dbt parse` in-process, once per run. dbt's partial parsing
    makes it 0.7-1 s against 2.2-2.8 s for a full parse, here: from one day to the next in
    target_path, and in a new warehouse from the machine's last parse (parse_cache)."""
    global _manifest
    from dbt.cli.main import dbtRunner

    vars_json = parse_vars(vars_json)
    key = (run_id, str(project_dir), str(target_path), vars_json)
    if _manifest is None or _manifest[0] != key:
        cache = parse_cache(project_dir)
        seed_partial_parse(target_path, cache)
        result = dbtRunner().invoke([
            "parse", "--quiet", "--project-dir", str(project_dir),
            "--profiles-dir", str(profiles_dir), "--target-path", str(target_path),
            "--log-path", str(target_path), "--vars", vars_json,
        ])
        if not result.success:
            raise DbtInProcessError(f"dbt parse failed: {result.exception or 'see the log'}")
        keep_partial_parse(target_path, cache)
        _manifest = (key, result.result)
    return _manifest[1]


@dataclass
class BuildTiming:
    """Where a build's time went, from dbt's own events: the whole build (dbt's command:
    its start, every node, its end), the DuckDB statements it ran (each statement's time as
    dbt's adapter measured it, hooks and transactions included) and closing the database
    afterwards (which checkpoints the build's write-ahead log into the file). With one dbt
    thread, what is left, `build_seconds - sql_seconds`, is dbt's own work: compiling and
    rendering each node, its events and logs (with more, statements overlap in time)."""

    nodes: int
    statements: int
    build_seconds: float
    sql_seconds: float
    close_seconds: float

    def summary(self) -> str:
        return (f"dbt build: {self.nodes} nodes in {self.build_seconds:.2f} s, of it "
                f"{self.sql_seconds:.2f} s in {self.statements} DuckDB statements; closing the "
                f"database {self.close_seconds:.2f} s")


# what BuildTiming.summary writes, for readers of the run's log (the benchmark)
BUILD_SUMMARY = re.compile(
    r"dbt build: (?P<nodes>\d+) nodes in (?P<build_seconds>[\d.]+) s, of it "
    r"(?P<sql_seconds>[\d.]+) s in (?P<statements>\d+) DuckDB statements; closing the "
    r"database (?P<close_seconds>[\d.]+) s")


def parse_build_summary(message: str) -> BuildTiming | None:
    """The BuildTiming a log message holds, if it is a build's summary."""
    found = BUILD_SUMMARY.search(message)
    if found is None:
        return None
    return BuildTiming(nodes=int(found["nodes"]), statements=int(found["statements"]),
                       build_seconds=float(found["build_seconds"]),
                       sql_seconds=float(found["sql_seconds"]),
                       close_seconds=float(found["close_seconds"]))


@dataclass
class InProcessInvocation:
    """What a finished in-process build left: its dbt events and artifacts."""

    success: bool
    target_path: Path
    manifest: dict[str, Any]  # dagster-dbt's view of the manifest (the definitions' one)
    translator: DagsterDbtTranslator
    project: Any
    raw_events: list[dict[str, Any]] = field(default_factory=list)
    exception: BaseException | None = None
    timing: BuildTiming | None = None

    def is_successful(self) -> bool:
        return self.success

    @cached_property
    def run_results(self) -> dict[str, Any] | None:
        """dbt's run_results.json of this build; None when dbt stopped before writing it
        (the build removes the previous one first)."""
        path = self.target_path / "run_results.json"
        return json.loads(path.read_text()) if path.exists() else None

    def stream(self, context: dg.AssetExecutionContext) -> Iterator[Any]:
        """Materialisations of the models and results of the tests, as dagster-dbt makes
        them."""
        for raw in self.raw_events:
            event = DbtCoreCliEventMessage(raw_event=raw, event_history_metadata={})
            yield from event.to_default_asset_events(
                manifest=self.manifest, dagster_dbt_translator=self.translator,
                context=context, target_path=self.target_path, project=self.project)


def build(args: Sequence[str], *, context: dg.AssetExecutionContext, project_dir: Path,
          profiles_dir: Path, target_path: Path,
          on_executing: Callable[[], Any] | None = None) -> InProcessInvocation:
    """Run `dbt <args>` for the assets this step materialises (dagster-dbt's selection:
    the whole stage, or the subset picked in the UI). `on_executing` is called once, when
    dbt begins executing its first node: work for another thread starts best there, as
    dbt's parse and start-up hold the interpreter and its queries leave it free."""
    from dbt.cli.main import dbtRunner
    from dbt_common.events.functions import msg_to_dict

    cleaned, selects, excludes = extract_runtime_selection_from_args(args)
    params = get_updated_cli_invocation_params_for_context(
        context=context, manifest={}, dagster_dbt_translator=DagsterDbtTranslator(),
        runtime_selects=selects, runtime_excludes=excludes)
    # a very large UI subset makes dagster-dbt write a selector into a copy of the project;
    # the copy is parsed there like any other project
    run_project = Path(params.dbt_project.project_dir) if params.dbt_project else project_dir
    target_path.mkdir(parents=True, exist_ok=True)
    # the shared target folder holds the last build's results; a build that stops before
    # writing its own must not be judged by those
    (target_path / "run_results.json").unlink(missing_ok=True)
    manifest = parsed_manifest(context.run_id, run_project, profiles_dir, target_path,
                               vars_argument(cleaned))
    full_args = [
        *cleaned, *params.selection_args,
        "--project-dir", str(run_project), "--profiles-dir", str(profiles_dir),
        "--target-path", str(target_path), "--log-path", str(target_path),
        *(["--indirect-selection", params.indirect_selection]
          if params.indirect_selection else []),
    ]
    raw_events: list[dict[str, Any]] = []
    first_execution = on_executing
    sql = {"seconds": 0.0, "statements": 0}

    def on_event(msg) -> None:
        nonlocal first_execution
        name = msg.info.name
        if name == "SQLQueryStatus":  # one a statement, with its time
            sql["seconds"] += msg.data.elapsed
            sql["statements"] += 1
        elif name in RESULT_EVENTS:
            raw_events.append(msg_to_dict(msg))
        elif name == "NodeExecuting" and first_execution is not None:
            first_execution, call = None, first_execution
            call()

    started = time.perf_counter()
    try:
        result = dbtRunner(manifest=manifest, callbacks=[on_event]).invoke(full_args)
    finally:
        built = time.perf_counter()
        release_duckdb()
    timing = BuildTiming(nodes=len(raw_events), statements=sql["statements"],
                         build_seconds=built - started, sql_seconds=sql["seconds"],
                         close_seconds=time.perf_counter() - built)
    return InProcessInvocation(
        success=result.success, target_path=target_path, manifest=params.manifest,
        translator=params.dagster_dbt_translator, project=params.dbt_project,
        raw_events=raw_events, exception=result.exception, timing=timing)
