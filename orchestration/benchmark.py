"""`ulm benchmark`: generate data at a named size, run the whole pipeline through Dagster,
and report wall time and peak memory per stage, plus the SQL floor (the dbt models' compiled
SQL run directly in DuckDB) that the dbt and Dagster layers are measured against.

Peak memory is the resident memory of the pipeline's process (`ulm run`, started as a child)
and every process it starts (dbt), sampled every 0.2 s from /proc; the end-to-end peak also
takes the kernel's high-water mark of the largest of them (wait4), so a spike between two
samples is not missed there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from orchestration.config import EngineConfig
from orchestration.dbt_args import DBT_STAGE_OPS

if TYPE_CHECKING:
    from orchestration.dbt_in_process import BuildTiming
    from orchestration.generator import GeneratorSettings

PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Size:
    users: int
    days: int
    events_per_active_day: float  # 6.6 gives ~100 events per person-year: 10M at 100k users
    # DuckDB's memory for the dbt models (engine.memory_limit), sized so that it, the
    # pipeline's own process and dbt's stay under the size's peak-memory bar (design.md);
    # models one at a time (engine.dbt_threads) where two at once would share too little
    memory_limit: str
    dbt_threads: int = 2
    # the generator simulates one chunk while it writes the two before: with five chunks of
    # the default 20k users the pipeline barely fills (0.99M events/s at medium; 1.11M/s
    # with ten chunks of 10k)
    chunk_users: int = 20_000


SIZES = {
    "demo": Size(users=5_000, days=365, events_per_active_day=5.0, memory_limit="1.5GB"),
    "medium": Size(users=100_000, days=365, events_per_active_day=6.6, memory_limit="2.5GB",
                   dbt_threads=1, chunk_users=10_000),
    "large": Size(users=1_000_000, days=365, events_per_active_day=6.6, memory_limit="5GB",
                  dbt_threads=1),
}

# Dagster step -> the benchmark stage it belongs to; every other step is an asset check.
STEP_STAGES = {
    "raw_landing": "ingest",
    "ulm_dbt_staging": "ingest",
    "ulm_dbt_models": "lifecycle marts",  # less its identity models, see stage_table
    "lifecycle_report": "lifecycle marts",
    "ulm_dbt_after_ml": "lifecycle marts",
    "churn_model": "churn train",
    "ml__user_churn_scores": "churn score",
    "ml__user_clv": "CLV",
    "clv_holdout_check": "CLV",
    "ml__winback_targets": "win-back",
    "serving_database": "publish",
}
STAGES = ["ingest", "identity", "lifecycle marts", "churn train", "churn score", "CLV",
          "win-back", "checks", "publish"]


# ---------------------------------------------------------------------------------------
# memory


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue  # the process ended while we looked
        # the command name may hold spaces and parentheses: fields start after the last ')'
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree_rss(root: int) -> int:
    """Resident bytes of a process and all its descendants."""
    kids = _children_map()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(kids.get(pid, []))
        try:
            with open(f"/proc/{pid}/statm", "rb") as fh:
                total += int(fh.read().split()[1]) * PAGE
        except OSError:
            continue
    return total


class MemorySampler(threading.Thread):
    """Samples tree_rss(root, default this process) until stopped; peak(t0, t1) reads them."""

    def __init__(self, root: int | None = None, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.root = root or os.getpid()
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append((time.time(), tree_rss(self.root)))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def peak(self, start: float = 0.0, end: float = float("inf")) -> int:
        inside = [rss for t, rss in self.samples if start <= t <= end]
        return max(inside, default=0)


# ---------------------------------------------------------------------------------------
# stages


@dataclass
class Stage:
    name: str
    seconds: float = 0.0
    peak_bytes: int = 0
    steps: int = 0


@dataclass
class StepTiming:
    key: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


def stage_table(steps: list[StepTiming], identity_windows: list[tuple[float, float]],
                peak) -> list[Stage]:
    """Group Dagster steps into the benchmark's stages. The identity models run inside the
    `ulm_dbt_models` dbt build: their own execution time (from dbt) moves from lifecycle
    marts to identity; `peak(start, end)` gives the memory high-water mark in a window."""
    stages = {name: Stage(name) for name in STAGES}
    for step in steps:
        stage = stages[STEP_STAGES.get(step.key, "checks")]
        stage.seconds += step.seconds
        stage.steps += 1
        stage.peak_bytes = max(stage.peak_bytes, peak(step.start, step.end))
    identity = stages["identity"]
    for start, end in identity_windows:
        identity.seconds += end - start
        identity.peak_bytes = max(identity.peak_bytes, peak(start, end))
    stages["lifecycle marts"].seconds -= identity.seconds
    return [stages[name] for name in STAGES]


def _run_steps(instance, run_id: str) -> list[StepTiming]:
    return [StepTiming(s.step_key, s.start_time, s.end_time)
            for s in instance.get_run_step_stats(run_id)
            if s.start_time is not None and s.end_time is not None]


def _build_timings(instance, run_id: str) -> dict[str, BuildTiming]:
    """Each dbt stage's BuildTiming, from the summary its step logs after the build."""
    from orchestration.dbt_in_process import parse_build_summary  # imports dagster-dbt

    timings = {}
    for entry in instance.all_logs(run_id):
        if entry.step_key in DBT_STAGE_OPS and entry.user_message:
            timing = parse_build_summary(entry.user_message)
            if timing is not None:
                timings[entry.step_key] = timing
    return timings


def _identity_windows(instance, run_id: str, identity_models: set[str]) -> list[
        tuple[float, float]]:
    """(start, end) of each identity model's execution, from dagster-dbt's materializations."""
    from dagster import DagsterEventType

    windows = []
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION, limit=100_000).records
    for record in records:
        entry = record.event_log_entry
        mat = entry.dagster_event.event_specific_data.materialization
        duration = mat.metadata.get("Execution Duration")
        if mat.asset_key.path[-1] in identity_models and duration is not None:
            windows.append((entry.timestamp - duration.value, entry.timestamp))
    return windows


def _identity_models(manifest: dict) -> set[str]:
    return {node["name"] for node in manifest["nodes"].values()
            if node["resource_type"] == "model" and "identity" in node.get("tags", [])}


# ---------------------------------------------------------------------------------------
# SQL floor


def dbt_stage_of(node: dict) -> str:
    if "after_ml" in node.get("tags", []):
        return "ulm_dbt_after_ml"
    if node["original_file_path"].startswith("models/staging"):
        return "ulm_dbt_staging"
    return "ulm_dbt_models"


def build_order(nodes: dict[str, dict]) -> list[str]:
    """Models and data tests in an order where everything runs after what it reads."""
    order, seen = [], set()

    def visit(uid: str) -> None:
        if uid in seen:
            return
        seen.add(uid)
        for dep in nodes[uid]["depends_on"]["nodes"]:
            if dep in nodes:
                visit(dep)
        order.append(uid)

    for uid in sorted(nodes):
        visit(uid)
    return order


def compile_project(dbt_vars: dict, target_path: Path) -> dict:
    """`dbt compile` with the run's vars (full refresh: incremental models compile to their
    whole-history SQL); returns the manifest holding every node's compiled SQL."""
    from orchestration.project import DBT_EXECUTABLE, ulm_dbt_project

    cmd = [DBT_EXECUTABLE, "compile", "--quiet", "--full-refresh",
           "--project-dir", str(ulm_dbt_project.project_dir),
           "--profiles-dir", str(ulm_dbt_project.profiles_dir),
           "--target-path", str(target_path), "--vars", json.dumps(dbt_vars),
           "--select", "resource_type:model", "test_type:data"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"dbt compile failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return json.loads((target_path / "manifest.json").read_text())


def connected_components_rounds(con, nodes_sql: str, edges_sql: str, max_rounds: int = 50
                                ) -> int:
    """The label propagation that dbt's `connected_components` macro runs while building
    int_identity_map, statement for statement (dbt compile does not run it: the compiled
    select only reads its result, identity_work.cc_labels). Returns the rounds taken."""
    s = "identity_work"
    con.execute(f"create schema if not exists {s}")
    con.execute(f"create or replace table {s}.cc_edges as select src, dst from ({edges_sql}) e "
                f"where src <> dst union select dst, src from ({edges_sql}) e where src <> dst")
    con.execute(f"create or replace table {s}.cc_labels as "
                f"select distinct node_id, node_id as label from ({nodes_sql}) n")
    for rounds in range(1, max_rounds + 1):
        con.execute(f"create or replace table {s}.cc_step as select l.node_id, "
                    "least(l.label, coalesce(min(n.label), l.label)) as label "
                    f"from {s}.cc_labels l left join {s}.cc_edges e on e.src = l.node_id "
                    f"left join {s}.cc_labels n on n.node_id = e.dst group by l.node_id, l.label")
        con.execute(f"create or replace table {s}.cc_next as select a.node_id, "
                    "least(a.label, coalesce(b.label, a.label)) as label "
                    f"from {s}.cc_step a left join {s}.cc_step b on b.node_id = a.label")
        changed = con.execute(f"select count(*) from {s}.cc_next a join {s}.cc_labels b "
                              "on a.node_id = b.node_id where a.label <> b.label").fetchone()[0]
        con.execute(f"create or replace table {s}.cc_labels as select * from {s}.cc_next")
        if changed == 0:
            return rounds
    raise RuntimeError(f"connected components did not converge in {max_rounds} rounds")


# dbt's after-commit hook that ranks redelivered rows (macros/incremental.sql)
RANKING_HOOK = re.compile(r"rank_redeliveries\(\s*'(\w+)'\s*,\s*'(\w+)'\s*,\s*'([^']*)'\s*\)")


def ranking_hooks(node: dict) -> list[tuple[str, str, str]]:
    """(key, rank column, order) of each `rank_redeliveries` post-hook of a model."""
    return [m.groups() for hook in node["config"].get("post-hook") or []
            for m in RANKING_HOOK.finditer(hook["sql"])]


def rank_redeliveries(con, relation: str, key: str, rank_column: str, order_by: str) -> None:
    """The statement dbt's `rank_redeliveries` hook runs after a full build, where every row
    is unranked and rows may have left (dbt compile does not render hooks): the model's
    select writes rank 1, this ranks the keys delivered more than once. It is SQL the
    pipeline needs (without it a redelivered event counts twice downstream), so the floor
    runs it as dbt does, after the model's statement."""
    runs = [r for (r,) in con.execute(
        f"select distinct _staging_run from {relation} order by 1").fetchall()]
    run_list = ", ".join("'" + r.replace("'", "''") + "'" for r in runs) or "null"
    unranked = f"reject_reason is null and _staging_run in ({run_list})"
    stamp = runs[-1].replace("'", "''") if runs else ""
    con.execute(f"""
        update {relation} as target
        set {rank_column} = ranked.rank, _staging_run = '{stamp}'
        from (
            select rowid as row_id,
                row_number() over (partition by {key} order by {order_by}, rowid) as rank
            from {relation}
            where reject_reason is null and {key} in (
                select {key} from {relation} where {unranked}
                group by {key} having count(*) > 1
                union
                select {key} from {relation} where {rank_column} > 1)
        ) as ranked
        where target.rowid = ranked.row_id and target.{rank_column} <> ranked.rank""")


def floor_plan(nodes: dict[str, dict]) -> dict[str, list[str]]:
    """The floor's nodes per dbt stage, in the order the stages run, each stage's in build
    order (a data test belongs to the stage of the model it tests)."""
    plan: dict[str, list[str]] = {stage: [] for stage in DBT_STAGE_OPS}
    for uid in build_order(nodes):
        node = nodes[uid]
        if not node.get("compiled_code") or node["config"].get("materialized") == "ephemeral":
            continue
        if node["resource_type"] == "test":
            attached = node.get("attached_node") or node["depends_on"]["nodes"][0]
            node = nodes.get(attached, node)
        plan[dbt_stage_of(node)].append(uid)
    return plan


@dataclass
class FloorTimes:
    seconds: dict[str, float]  # per dbt stage, its checkpoint included
    checkpoint_seconds: dict[str, float]  # the checkpoint that ends each stage


def run_floor(manifest: dict, work_copy: Path, memory_limit: str, threads: int = 2,
              checkpoint_threshold: str = EngineConfig().checkpoint_threshold
              ) -> FloorTimes:
    """Run every model's compiled SQL (CREATE TABLE AS; for int_identity_map the label
    propagation its macro runs first) and every data test's (count of failing rows) directly
    in DuckDB on a copy of the working database, stage by stage, and end each stage with a
    CHECKPOINT; seconds per dbt stage, and of them the checkpoint's. The checkpoint is there
    because each dbt stage ends with one: dbt closes its connection after the build, and
    closing writes what the build left in DuckDB's log into the file (up to
    engine.checkpoint_threshold of it), which the stage's time includes. Of the hooks (dbt
    renders them only while it builds) the floor runs the redelivery ranking, as the data
    needs it (`rank_redeliveries`); the others keep dbt's own records (the staging build
    log, the changed-people snapshots for the next day) and count as dbt's overhead. The
    copy keeps the name work.duckdb so the compiled names ("work"."staging"...) resolve.
    DuckDB gets the engine settings dbt's profile gives it (memory limit, checkpoint
    threshold, time zone)."""
    nodes = {uid: node for uid, node in manifest["nodes"].items()
             if node["resource_type"] in ("model", "test")
             and node["config"].get("enabled", True)}
    times = FloorTimes(dict.fromkeys(DBT_STAGE_OPS, 0.0), dict.fromkeys(DBT_STAGE_OPS, 0.0))
    con = duckdb.connect(str(work_copy), config={
        "threads": threads, "memory_limit": memory_limit,
        "checkpoint_threshold": checkpoint_threshold})
    try:
        con.execute("SET TimeZone = 'UTC'")  # as the dbt profile sets it
        for stage, uids in floor_plan(nodes).items():
            started = time.perf_counter()
            for uid in uids:
                run_floor_node(con, nodes, nodes[uid])
            checkpoint_started = time.perf_counter()
            con.execute("CHECKPOINT")
            finished = time.perf_counter()
            times.seconds[stage] = finished - started
            times.checkpoint_seconds[stage] = finished - checkpoint_started
    finally:
        con.close()
    return times


def run_floor_node(con, nodes: dict[str, dict], node: dict) -> None:
    """One model (CREATE OR REPLACE ... AS its compiled select, then its redelivery
    ranking if it has one) or data test (its failing rows counted)."""
    sql = node["compiled_code"]
    if node["resource_type"] != "model":
        con.execute(f"SELECT count(*) FROM ({sql}) AS dbt_internal_test").fetchall()
        return
    if "identity_work.cc_labels" in sql:
        relations = {nodes[dep]["name"]: nodes[dep]["relation_name"]
                     for dep in node["depends_on"]["nodes"] if dep in nodes}
        connected_components_rounds(
            con, f"select node_id from {relations['int_identity_nodes']}",
            f"select src, dst from {relations['int_identity_edges']}")
    kind = "VIEW" if node["config"]["materialized"] == "view" else "TABLE"
    con.execute(f"CREATE OR REPLACE {kind} {node['relation_name']} AS {sql}").fetchall()
    for key, rank_column, order_by in ranking_hooks(node):
        rank_redeliveries(con, node["relation_name"], key, rank_column, order_by)


# ---------------------------------------------------------------------------------------
# the benchmark


@dataclass
class BenchmarkResult:
    size: str
    users: int
    days: int
    events: int
    generate_seconds: float
    events_per_second: float
    pipeline_seconds: float
    dagster_run_seconds: float
    orchestration_seconds: float  # Dagster between and around steps
    peak_bytes: int
    succeeded: bool
    stages: list[Stage] = field(default_factory=list)
    dbt_step_seconds: dict[str, float] = field(default_factory=dict)
    floor_seconds: dict[str, float] = field(default_factory=dict)
    floor_checkpoint_seconds: dict[str, float] = field(default_factory=dict)  # in floor_seconds
    floor_peak_bytes: int = 0
    floor_error: str = ""  # why the SQL floor was not measured, when it failed
    # in the run itself, per dbt stage: DuckDB statements as dbt timed them, and closing the
    # database after the build (its checkpoint): the floor's work, measured in the same
    # minutes as dbt's, which the machine's drift from one run to the next does not move
    dbt_sql_seconds: dict[str, float] = field(default_factory=dict)
    dbt_close_seconds: dict[str, float] = field(default_factory=dict)
    memory_limit: str = ""  # engine.memory_limit of the run
    # the next day's run on top of the full one: one new day of events and orders landed
    daily_seconds: float = 0.0
    daily_peak_bytes: int = 0
    daily_new_rows: int = 0
    daily_succeeded: bool | None = None

    @property
    def daily_ratio(self) -> float | None:
        """The daily incremental run's wall time as a share of the full run's."""
        if not self.daily_seconds or not self.pipeline_seconds:
            return None
        return self.daily_seconds / self.pipeline_seconds

    @property
    def dbt_overhead(self) -> float | None:
        """(dbt steps + Dagster's share) over the floor, minus one."""
        floor = sum(self.floor_seconds.values())
        if not floor:
            return None
        return sum(self.dbt_step_seconds.values()) / floor - 1.0

    @property
    def dbt_overhead_in_run(self) -> float | None:
        """(dbt steps + Dagster's share) over their own DuckDB statements and closing
        checkpoint, minus one: what dbt and Dagster add, within the run."""
        work = sum(self.dbt_sql_seconds.values()) + sum(self.dbt_close_seconds.values())
        if not work:
            return None
        steps = sum(self.dbt_step_seconds.get(step, 0.0) for step in self.dbt_sql_seconds)
        return steps / work - 1.0

    def as_json(self) -> dict:
        out = asdict(self)
        out["dbt_overhead"] = self.dbt_overhead
        out["dbt_overhead_in_run"] = self.dbt_overhead_in_run
        out["daily_ratio"] = self.daily_ratio
        return out


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


def format_table(r: BenchmarkResult) -> str:
    lines = [f"ULM benchmark: {r.size} ({r.users:,} users, {r.days} days, {r.events:,} events; "
             f"DuckDB memory limit {r.memory_limit})",
             "", f"{'stage':<24}{'wall s':>10}{'peak memory':>14}{'steps':>7}",
             "-" * 55]
    lines.append(f"{'generate (not in run)':<24}{r.generate_seconds:>10.1f}{'':>14}{'':>7}")
    for s in r.stages:
        lines.append(f"{s.name:<24}{s.seconds:>10.1f}{_gb(s.peak_bytes):>14}{s.steps:>7}")
    lines.append(f"{'Dagster between steps':<24}{r.orchestration_seconds:>10.1f}")
    lines.append("-" * 55)
    lines.append(f"{'Dagster run':<24}{r.dagster_run_seconds:>10.1f}")
    lines.append(f"{'pipeline end to end':<24}{r.pipeline_seconds:>10.1f}{_gb(r.peak_bytes):>14}")
    lines.append(f"generator: {r.events_per_second:,.0f} events/s; run "
                 f"{'succeeded' if r.succeeded else 'FAILED'}")
    if r.daily_succeeded is not None:
        ratio = f"{r.daily_ratio:.0%} of the full run" if r.daily_ratio else "n/a"
        lines.append(f"{'next day, incremental':<24}{r.daily_seconds:>10.1f}"
                     f"{_gb(r.daily_peak_bytes):>14}   ({r.daily_new_rows:,} new rows; {ratio}"
                     f"{'' if r.daily_succeeded else '; FAILED'})")
    if r.floor_seconds:
        lines += ["", f"{'dbt stage':<24}{'dbt+Dagster s':>14}{'SQL floor s':>13}{'overhead':>10}",
                  "-" * 61]
        for step in DBT_STAGE_OPS:
            wall, floor = r.dbt_step_seconds.get(step, 0.0), r.floor_seconds.get(step, 0.0)
            over = f"{wall / floor - 1:+.0%}" if floor else "n/a"
            lines.append(f"{step:<24}{wall:>14.1f}{floor:>13.1f}{over:>10}")
        total_wall, total_floor = sum(r.dbt_step_seconds.values()), sum(r.floor_seconds.values())
        lines.append(f"{'all dbt stages':<24}{total_wall:>14.1f}{total_floor:>13.1f}"
                     f"{r.dbt_overhead:>+10.0%}")
        if r.floor_checkpoint_seconds:
            lines.append(f"SQL floor: {sum(r.floor_checkpoint_seconds.values()):.1f} s of it "
                         "the checkpoints that end its stages, as dbt's end when dbt closes "
                         "the database")
        lines.append(f"SQL floor peak memory {_gb(r.floor_peak_bytes)} (models' and data "
                     "tests' compiled SQL, run directly in DuckDB)")
    if r.floor_error:
        lines += ["", f"SQL floor not measured: {r.floor_error}"]
    if r.dbt_sql_seconds:
        lines += ["", "dbt and Dagster over the same statements within the run (each "
                  "statement as dbt timed it, and closing the database):",
                  f"{'dbt stage':<24}{'dbt+Dagster s':>14}{'statements s':>14}"
                  f"{'closing s':>11}{'overhead':>10}", "-" * 73]
        for step in DBT_STAGE_OPS:
            if step not in r.dbt_sql_seconds:
                continue
            wall, sql = r.dbt_step_seconds.get(step, 0.0), r.dbt_sql_seconds[step]
            close = r.dbt_close_seconds.get(step, 0.0)
            over = f"{wall / (sql + close) - 1:+.0%}" if sql + close else "n/a"
            lines.append(f"{step:<24}{wall:>14.1f}{sql:>14.1f}{close:>11.1f}{over:>10}")
        lines.append(f"{'all dbt stages':<24}"
                     f"{sum(r.dbt_step_seconds.get(s, 0.0) for s in r.dbt_sql_seconds):>14.1f}"
                     f"{sum(r.dbt_sql_seconds.values()):>14.1f}"
                     f"{sum(r.dbt_close_seconds.values()):>11.1f}"
                     f"{r.dbt_overhead_in_run:>+10.0%}")
    return "\n".join(lines)


def _run_pipeline_process(raw: Path, warehouse: Path, as_of: str, config_path: str | None,
                          log_path: Path, say) -> tuple[int, float, int, MemorySampler]:
    """`ulm run` in a child process: exit code, wall seconds, peak memory of its process
    tree (sampled, and the kernel's high-water mark of the biggest process), the samples."""
    cmd = [sys.executable, "-m", "orchestration.cli", "run", "--raw-dir", str(raw),
           "--warehouse", str(warehouse), "--as-of", as_of]
    if config_path:
        cmd += ["--config", config_path]
    env = {**os.environ, "ULM_PII_KEY": os.environ.get("ULM_PII_KEY") or "benchmark-key"}
    with open(log_path, "w") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        sampler = MemorySampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        sampler.stop()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        say(log_path.read_text()[-3000:])
    return code, seconds, max(sampler.peak(), usage.ru_maxrss * 1024), sampler


NEXT_DAY_DIR = "benchmark_next_day"


def add_next_day(raw: Path, last_day: str, next_day: str) -> int:
    """Land one more day: the last day's events, orders (new ids) and CRM updates (same
    people), moved one day later, as new Parquet files. Returns the rows written."""
    rows = 0
    with duckdb.connect() as con:
        for source, id_col, time_cols, pattern in (
                ("events", "event_id", ["occurred_at"], "*.parquet"),
                ("orders", "order_id", ["ordered_at", "updated_at"], "*.parquet"),
                ("customers", None, ["updated_at"], "*.csv*")):
            files = sorted(str(p) for p in (raw / source).rglob(pattern)
                           if NEXT_DAY_DIR not in p.parts)
            if not files:
                continue
            relation = (f"read_parquet({files!r}, union_by_name = true, hive_partitioning = "
                        "false)" if pattern == "*.parquet" else
                        f"read_csv({files!r}, union_by_name = true, all_varchar = true, "
                        "hive_partitioning = false)")
            types = {name: kind for name, kind, *_ in
                     con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
            first = time_cols[0]
            if types[first].startswith("TIMESTAMP"):
                keep = f"CAST({first} AS DATE) = DATE '{last_day}'"
                replaced = [f"{c} + INTERVAL 1 DAY AS {c}" for c in time_cols]
            else:  # text timestamps: move the date part
                keep = f"{first} LIKE '{last_day}%'"
                replaced = [f"replace({c}, '{last_day}', '{next_day}') AS {c}"
                            for c in time_cols]
            if id_col:
                replaced.append(f"{id_col} || '-next' AS {id_col}")
            out = raw / source / NEXT_DAY_DIR / f"{source}-{next_day}.parquet"
            out.parent.mkdir(parents=True, exist_ok=True)
            con.execute(f"COPY (SELECT * REPLACE ({', '.join(replaced)}) FROM {relation} "
                        f"WHERE {keep}) TO '{out}' (FORMAT parquet)")
            rows += con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
    return rows


def remove_next_day(raw: Path) -> None:
    """Leave the generated data as generated (a later --reuse-data run starts clean)."""
    for source in ("events", "orders", "customers"):
        shutil.rmtree(raw / source / NEXT_DAY_DIR, ignore_errors=True)


class FloorError(RuntimeError):
    """The SQL floor could not run (too little disk for the copy, DuckDB failed); the
    pipeline's own figures stand without it."""


# the floor's copy of work.duckdb and what DuckDB spills beside it while it builds the
# largest models: free disk below this many times work.duckdb's size is not enough
FLOOR_DISK_FACTOR = 2.0


def floor_result(result: BenchmarkResult, warehouse: Path, floor_dir: Path, cfg,
                 as_of: str) -> None:
    """Run the SQL floor on a copy of the run's working database into `result`; the copy
    is removed afterwards, whatever happens."""
    from orchestration.config import dbt_vars

    needed = FLOOR_DISK_FACTOR * (warehouse / "work.duckdb").stat().st_size
    shutil.rmtree(floor_dir, ignore_errors=True)
    floor_dir.mkdir(parents=True)
    try:
        free = shutil.disk_usage(floor_dir).free
        if free < needed:
            raise FloorError(f"{_gb(free)} free in {floor_dir}, it needs about {_gb(needed)} "
                             f"({FLOOR_DISK_FACTOR:g} times work.duckdb: its copy and what "
                             "DuckDB spills beside it); free some disk or run with --no-floor")
        compiled = compile_project(dbt_vars(cfg, as_of, warehouse), floor_dir / "target")
        work_copy = floor_dir / "work.duckdb"
        shutil.copyfile(warehouse / "work.duckdb", work_copy)
        floor_sampler = MemorySampler()
        floor_sampler.start()
        try:
            floor_times = run_floor(compiled, work_copy, cfg.engine.memory_limit,
                                    checkpoint_threshold=cfg.engine.checkpoint_threshold)
        finally:
            floor_sampler.stop()
        result.floor_seconds = floor_times.seconds
        result.floor_checkpoint_seconds = floor_times.checkpoint_seconds
        result.floor_peak_bytes = floor_sampler.peak()
    except FloorError:
        raise
    except (duckdb.Error, OSError, RuntimeError) as error:  # RuntimeError: dbt compile
        raise FloorError(f"{type(error).__name__}: {str(error).splitlines()[0]}") from error
    finally:
        shutil.rmtree(floor_dir, ignore_errors=True)


def run_benchmark(size_name: str, out_dir: Path, config_path: str | None, floor: bool = True,
                  reuse_data: bool = False, say=print, daily: bool = True) -> BenchmarkResult:
    """Without a config file, the size's DuckDB memory limit and dbt threads are the only
    settings changed."""
    from orchestration.cli import _dagster_home
    from orchestration.config import load_config
    from orchestration.generator import GeneratorSettings

    size = SIZES[size_name]
    data, warehouse = out_dir / "data", out_dir / "warehouse"
    settings = GeneratorSettings(users=size.users, days=size.days,
                                 events_per_active_day=size.events_per_active_day,
                                 chunk_users=size.chunk_users)
    events, gen_seconds = benchmark_data(data, settings, reuse_data, say)
    shutil.rmtree(warehouse, ignore_errors=True)  # a full run from nothing
    if not config_path:
        config_file = out_dir / "benchmark_config.yaml"
        config_file.write_text(f"engine:\n  memory_limit: {size.memory_limit}\n"
                               f"  dbt_threads: {size.dbt_threads}\n")
        config_path = str(config_file)

    # the pipeline runs as its own process, so its memory is its own (not the generator's)
    say(f"running the pipeline (log: {out_dir / 'pipeline.log'}) ...")
    code, pipeline_seconds, peak, sampler = _run_pipeline_process(
        data / "raw", warehouse, settings.end_date, config_path, out_dir / "pipeline.log", say)

    import dagster as dg

    from orchestration.project import ulm_dbt_project

    instance = dg.DagsterInstance.from_config(str(_dagster_home(warehouse.resolve())))
    run = instance.get_runs(limit=1)[0]
    stats = instance.get_run_stats(run.run_id)
    steps = _run_steps(instance, run.run_id)
    manifest = json.loads(Path(ulm_dbt_project.manifest_path).read_text())
    windows = _identity_windows(instance, run.run_id, _identity_models(manifest))
    run_seconds = (stats.end_time or 0) - (stats.start_time or 0)
    result = BenchmarkResult(
        size=size_name, users=size.users, days=size.days, events=events,
        generate_seconds=gen_seconds, events_per_second=events / gen_seconds if gen_seconds else 0,
        pipeline_seconds=pipeline_seconds, dagster_run_seconds=run_seconds,
        orchestration_seconds=run_seconds - sum(s.seconds for s in steps),
        peak_bytes=peak, succeeded=code == 0,
        stages=stage_table(steps, windows, sampler.peak),
        dbt_step_seconds={s.key: s.seconds for s in steps if s.key in DBT_STAGE_OPS},
        memory_limit=load_config(config_path).engine.memory_limit,
    )
    for step, timing in _build_timings(instance, run.run_id).items():
        result.dbt_sql_seconds[step] = timing.sql_seconds
        result.dbt_close_seconds[step] = timing.close_seconds
    if floor and code == 0:
        say("running the SQL floor (compiled dbt SQL directly in DuckDB) ...")
        try:
            floor_result(result, warehouse, out_dir / "floor", load_config(config_path),
                         settings.end_date)
        except FloorError as error:
            result.floor_error = str(error)
            say(f"SQL floor not measured: {error}")
    if daily and code == 0:
        next_day = (date.fromisoformat(settings.end_date) + timedelta(days=1)).isoformat()
        try:
            result.daily_new_rows = add_next_day(data / "raw", settings.end_date, next_day)
            say(f"running the next day ({next_day}) incrementally on top of it ...")
            daily_code, result.daily_seconds, result.daily_peak_bytes, _ = \
                _run_pipeline_process(data / "raw", warehouse, next_day, config_path,
                                      out_dir / "pipeline_daily.log", say)
        finally:
            remove_next_day(data / "raw")
        result.daily_succeeded = daily_code == 0
    return result


def benchmark_data(data: Path, settings: GeneratorSettings, reuse_data: bool,
                   say=print) -> tuple[int, float]:
    """The generated data in `data` (RAW and truth): reused when asked and generated with
    the same settings, else generated anew. Returns the events and the generator's seconds.
    A next day that an interrupted benchmark left in the raw dir is removed first: the full
    run would land it (a full run with two extra days of files, measured as the benchmark's
    by mistake)."""
    from orchestration.generator import generate

    report_path = data / "truth" / "generation.json"
    if reuse_data and report_path.exists() and json.loads(report_path.read_text()).get(
            "settings") == asdict(settings):
        saved = json.loads(report_path.read_text())
        say(f"reusing generated data in {data}")
        remove_next_day(data / "raw")
        return saved["rows"]["events"], saved["seconds"]
    shutil.rmtree(data, ignore_errors=True)
    say(f"generating {settings.users:,} users over {settings.days} days ...")
    report = generate(data, settings)
    return report.rows.get("events", 0), report.seconds
