"""The `ulm` command: generate demo data, run the pipeline, open the UI.

    ulm demo                     generate demo data and run the pipeline on it
    ulm generate --users N ...   write a synthetic raw dir (and its ground truth)
    ulm run --raw-dir DIR ...    run the whole pipeline as of a date (through Dagster)
    ulm backfill --start --end   run it as of every date of a range, oldest first
    ulm ui                       the Dagster UI for this code location, on 127.0.0.1
    ulm evaluate                 identity resolution against the generator's truth
    ulm config                   every config key with its default
    ulm benchmark --size S       time and measure the whole pipeline at a named size
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb

from orchestration.config import ConfigError, load_config, reference_table
from orchestration.dbt_args import resolve_as_of
from orchestration.generator import GeneratorSettings, generate

log = logging.getLogger("ulm")

DEMO_DIR = Path("demo_data")
DEFAULT_WAREHOUSE = Path("warehouse")
DAGSTER_YAML = """\
# written by ulm; edit freely (ulm then leaves the file alone)
telemetry:
  enabled: false
# one run at a time: every run writes WAREHOUSE/work.duckdb, which has one writer (a UI
# backfill of many dates queues its runs and they go one after another)
concurrency:
  runs:
    max_concurrent_runs: 1
"""
# what earlier versions wrote: replaced by the current file, which adds the run queue limit
_OLDER_DAGSTER_YAMLS = {"telemetry:\n  enabled: false\n"}


class UserError(Exception):
    """Something the user can fix; printed as one paragraph, exit code 2."""


# ---------------------------------------------------------------------------------------
# helpers


def _say(msg: str) -> None:
    print(msg, flush=True)


def _dagster_home(warehouse: Path) -> Path:
    home = (warehouse / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    yaml_path = home / "dagster.yaml"
    if not yaml_path.exists() or yaml_path.read_text() in _OLDER_DAGSTER_YAMLS:
        yaml_path.write_text(DAGSTER_YAML)
    return home


def _pii_key(demo: bool, warehouse: Path) -> str:
    key = os.environ.get("ULM_PII_KEY", "")
    if key:
        return key
    if not demo:
        raise UserError(
            "ULM_PII_KEY is not set. It is the secret that keys the hashes replacing emails, "
            "phones and names; set it in the environment (for example from your secret store) "
            "and keep it the same across runs, or person keys will change."
        )
    # demo only: a random key kept in the warehouse so repeated demo runs agree
    path = warehouse / ".demo_pii_key"
    if not path.exists():
        warehouse.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip()


def _progress(done: int, total: int) -> None:
    _say(f"  generated chunk {done}/{total}")


# ---------------------------------------------------------------------------------------
# commands


def cmd_generate(args: argparse.Namespace) -> int:
    settings = GeneratorSettings(users=args.users, days=args.days, seed=args.seed,
                                 end_date=args.end_date)
    _say(f"generating {args.users:,} users over {args.days} days into {args.out} ...")
    report = generate(Path(args.out), settings, progress=_progress)
    _say(f"wrote {sum(report.rows.values()):,} rows in {report.files} files in "
         f"{report.seconds:.1f}s ({report.events_per_second:,.0f} events/s)")
    for source, n in report.rows.items():
        _say(f"  {source:<18} {n:>12,}")
    _say(f"raw files: {Path(args.out) / 'raw'}   ground truth: {Path(args.out) / 'truth'}")
    return 0


def run_pipeline(raw_dir: Path, warehouse: Path, as_of: str | None, config_path: str | None,
                 demo: bool = False, full_refresh: bool = False) -> int:
    """Run the daily job in-process through Dagster; print a one-paragraph explanation and
    return non-zero when anything blocks."""
    config = load_config(config_path)
    if not Path(raw_dir).is_dir():
        raise UserError(f"raw dir {raw_dir} does not exist or is not a folder. It must hold one "
                        "subfolder per source (events/, orders/, customers/, "
                        "campaign_touches/, privacy_requests/).")
    try:
        as_of_date = resolve_as_of(as_of, config.business_timezone)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    warehouse = Path(warehouse).resolve()
    warehouse.mkdir(parents=True, exist_ok=True)
    pii_key = _pii_key(demo, warehouse)

    from orchestration.project import prepare_manifest

    _say("preparing the dbt manifest ...")
    prepare_manifest()
    from orchestration.dagster_storage import open_instance
    from orchestration.definitions import build_resources, defs
    from orchestration.resources import UlmSettings
    from orchestration.schedules import run_config_for

    settings = UlmSettings(raw_dir=str(Path(raw_dir).resolve()), warehouse_dir=str(warehouse),
                           config_path=str(Path(config_path).resolve()) if config_path else "",
                           pii_key=pii_key)
    instance = open_instance(_dagster_home(warehouse))
    _say(f"running the pipeline as of {as_of_date} (raw: {raw_dir}, warehouse: {warehouse}) ...")
    started = time.perf_counter()
    job = defs.resolve_job_def("ulm_daily")
    run_config = {**run_config_for(as_of_date, full_refresh),
                  "loggers": {"console": {"config": {"log_level": "INFO"}}}}
    tags = {"as_of": as_of_date, "launched_by": "ulm run"}
    if job.partitions_def.has_partition_key(as_of_date):
        tags["dagster/partition"] = as_of_date  # the UI shows it as that date's partition run
    with instance:  # closes the event log's databases when the run is over
        result = job.execute_in_process(
            run_config=run_config, instance=instance,
            resources=build_resources(settings), raise_on_error=False, tags=tags,
        )
    seconds = time.perf_counter() - started
    health = _health(warehouse, result.run_id)
    if not result.success:
        _say("")
        _say(f"ULM run FAILED after {seconds:.0f}s; serving.duckdb was not changed. "
             + _failure_paragraph(result, health))
        _say(_health_summary(health, warehouse))
        return 1
    _say("")
    _say(f"ULM run succeeded in {seconds:.0f}s (Dagster run {result.run_id}).")
    _say(_serving_summary(warehouse / "serving.duckdb"))
    _say(_health_summary(health, warehouse))
    return 0


def _health(warehouse: Path, run_id: str) -> dict | None:
    """This run's data_quality_results, counted (None when the run stopped before any)."""
    from expectations.results import run_summary

    work = warehouse / "work.duckdb"
    if not work.exists():
        return None
    with duckdb.connect(str(work), read_only=True) as con:
        return run_summary(con, run_id)


def _health_summary(health: dict | None, warehouse: Path, limit: int = 10) -> str:
    if not health or not health["checks"]:
        return "Data health: no checks ran."
    lines = [f"Data health: {health['checks']} checks, {health['passed']} passed, "
             f"{health['blocking_failed']} blocking failures, {health['warnings']} warnings "
             "(all results: marts.data_quality_results)."]
    for severity, stage, table, check, rows, observed, example in health["failures"][:limit]:
        detail = f"{rows:,} rows" if rows else observed
        lines.append(f"  {severity.upper():5} {stage:<14} {table} {check}: {detail}"
                     + (f" (e.g. {example})" if example else ""))
    more = len(health["failures"]) - limit
    if more > 0:
        lines.append(f"  ... and {more} more")
    docs = warehouse / "data_docs" / "index.html"
    if docs.exists():
        lines.append(f"  Great Expectations Data Docs: {docs}")
    return "\n".join(lines)


def _failure_paragraph(result, health: dict | None = None) -> str:
    parts = []
    blocking = [f for f in (health or {}).get("failures", []) if f[0] == "block"]
    for _, stage, table, check, rows, observed, example in blocking[:8]:
        what = (f"{rows:,} rows" if rows else observed).rstrip(".")
        parts.append(f"Blocking data-quality check {check} failed on {table} ({stage}): {what}"
                     + (f", e.g. {example}." if example else "."))
    for event in result.get_step_failure_events():
        err = event.step_failure_data.error
        # the user's error is the innermost cause (e.g. LandingError), not Dagster's wrapper
        while err is not None and err.cause is not None and "dagster" in err.cls_name.lower():
            err = err.cause
        message = (err.message if err else "").strip()
        if "DagsterAssetCheckFailedError" in message and blocking:
            continue  # said above, with the table, the rows and an example
        if message.startswith("dagster._core.definitions.events.Failure: "):
            message = message.split(": ", 1)[1]
        parts.append(f"Step {event.step_key} failed: {message}")
    if not parts:
        parts.append("The run did not complete (see the Dagster UI for the run's logs).")
    return " ".join(parts) + " Fix the cause and run the same command again."


def _serving_summary(serving: Path) -> str:
    with duckdb.connect(str(serving), read_only=True) as con:
        tables = con.execute(
            "SELECT table_name, estimated_size FROM duckdb_tables() WHERE schema_name = 'marts' "
            "ORDER BY table_name").fetchall()
        recon = con.execute(
            "SELECT source, raw_rows, staged_rows, duplicate_rows, quarantined_rows, "
            "is_reconciled FROM marts.source_reconciliation ORDER BY source").fetchall()
    lines = [f"Serving database: {serving}  (schema marts; open it read-only from BI)"]
    lines += [f"  marts.{name:<24} {rows:>10,} rows" for name, rows in tables]
    lines.append("Reconciliation (raw = staged + duplicate + quarantined):")
    for source, raw, staged, dup, quar, ok in recon:
        lines.append(f"  {source:<18} raw {raw:>10,} = {staged:>10,} + {dup:>8,} + {quar:>7,}"
                     f"  {'ok' if ok else 'MISMATCH'}")
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    return run_pipeline(Path(args.raw_dir), Path(args.warehouse), args.as_of, args.config,
                        full_refresh=args.full_refresh)


def backfill_dates(start: str, end: str) -> list[str]:
    """Every date from start to end, inclusive, oldest first."""
    try:
        first, last = date.fromisoformat(start), date.fromisoformat(end)
    except ValueError:
        raise UserError(f"--start {start!r} and --end {end!r} must be dates in YYYY-MM-DD "
                        "form") from None
    if last < first:
        raise UserError(f"--end {end} is before --start {start}")
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def cmd_backfill(args: argparse.Namespace) -> int:
    """Run the pipeline as of each date of a range, oldest first, one at a time (each run is
    one partition of the daily job). Stops at the first failed date: later dates would be
    built on a working database that the failure left behind."""
    dates = backfill_dates(args.start, args.end)
    _say(f"backfill: {len(dates)} dates, {dates[0]} to {dates[-1]}")
    started = time.perf_counter()
    for i, as_of in enumerate(dates, 1):
        _say(f"\n=== [{i}/{len(dates)}] as of {as_of} ===")
        code = run_pipeline(Path(args.raw_dir), Path(args.warehouse), as_of, args.config,
                            full_refresh=args.full_refresh and i == 1)
        if code != 0:
            _say(f"backfill stopped at {as_of} ({i - 1} of {len(dates)} dates done); fix the "
                 f"cause and run again with --start {as_of}.")
            return code
    _say(f"\nbackfill done: {len(dates)} dates in {time.perf_counter() - started:.0f}s; "
         f"serving.duckdb is as of {dates[-1]}.")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    settings = GeneratorSettings(users=args.users, days=args.days, seed=args.seed)
    _say(f"[1/2] generating demo data: {args.users:,} users over {args.days} days -> {out}")
    report = generate(out, settings, progress=_progress)
    _say(f"      {report.rows.get('events', 0):,} events, {report.rows.get('orders', 0):,} "
         f"orders in {report.seconds:.1f}s")
    _say("[2/2] running the pipeline")
    code = run_pipeline(out / "raw", Path(args.warehouse), settings.end_date, args.config,
                        demo=True)
    if code == 0:
        warehouse = Path(args.warehouse).resolve()
        _say("")
        ulm = Path(sys.executable).with_name("ulm")
        _say(f"Results: {warehouse / 'serving.duckdb'} (schema marts), for example:")
        _say(f"  {Path(sys.executable)} -c \"import duckdb; print(duckdb.connect("
             f"'{warehouse / 'serving.duckdb'}', read_only=True).sql("
             "'from marts.dim_users limit 5'))\"")
        _say(f"Dagster UI: {ulm} ui --warehouse {args.warehouse} --raw-dir {out / 'raw'}"
             "   then open http://127.0.0.1:3000")
    return code


def cmd_ui(args: argparse.Namespace) -> int:
    from orchestration.project import prepare_manifest

    if args.config:
        load_config(args.config)  # fail here, clearly, rather than inside the UI
    prepare_manifest()
    warehouse = Path(args.warehouse).resolve()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(_dagster_home(warehouse)),
        "ULM_RAW_DIR": str(Path(args.raw_dir).resolve()),
        "ULM_WAREHOUSE": str(warehouse),
        "ULM_CONFIG": str(Path(args.config).resolve()) if args.config else "",
        # a demo warehouse keeps its demo key; any other needs the real secret
        "ULM_PII_KEY": _pii_key(demo=(warehouse / ".demo_pii_key").exists(),
                                warehouse=warehouse),
    }
    dagster = Path(sys.executable).with_name("dagster")
    cmd = [str(dagster), "dev", "-m", "orchestration.definitions", "-h", "127.0.0.1", "-p",
           str(args.port)]
    _say(f"Dagster UI on http://127.0.0.1:{args.port} (Ctrl-C to stop)")
    return subprocess.call(cmd, env=env)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from orchestration.truth import identity_quality

    q = identity_quality(Path(args.warehouse) / "work.duckdb", Path(args.truth))
    _say(f"identifiers evaluated: {q.identifiers:,}; people: {q.predicted_people:,} found, "
         f"{q.true_people:,} true")
    _say(f"pairwise precision {q.pairwise_precision:.5f}, recall {q.pairwise_recall:.5f}")
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from orchestration.benchmark import format_table, run_benchmark

    out = Path(args.out or f"benchmark_{args.size}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    result = run_benchmark(args.size, out, args.config, floor=not args.no_floor,
                           reuse_data=args.reuse_data, say=_say, daily=not args.no_daily)
    payload = json.dumps(result.as_json(), indent=2)
    json_path = Path(args.json) if args.json else out / "benchmark.json"
    json_path.write_text(payload + "\n")
    _say("")
    _say(format_table(result))
    _say("")
    _say(payload)
    _say(f"(JSON also in {json_path})")
    return 0 if result.succeeded else 1


def cmd_config(args: argparse.Namespace) -> int:
    if args.check:
        load_config(args.check)
        _say(f"{args.check}: ok")
        return 0
    for key, default, description in reference_table():
        _say(f"{key} = {default}\n    {description}")
    return 0


# ---------------------------------------------------------------------------------------
# parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ulm", description="User Lifecycle Management")
    sub = parser.add_subparsers(dest="command", required=True)

    def positive(value: str) -> int:
        n = int(value)
        if n <= 0:
            raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
        return n

    g = sub.add_parser("generate", help="write synthetic raw data and its ground truth")
    g.add_argument("--users", type=positive, default=5_000)
    g.add_argument("--days", type=positive, default=365)
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--end-date", default=GeneratorSettings.end_date,
                   help="last day of data (YYYY-MM-DD)")
    g.add_argument("--out", required=True, help="folder for raw/ and truth/")
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser("run", help="run the whole pipeline as of a date")
    r.add_argument("--raw-dir", required=True)
    r.add_argument("--warehouse", default=str(DEFAULT_WAREHOUSE))
    r.add_argument("--as-of", default=None, help="YYYY-MM-DD (default: yesterday)")
    r.add_argument("--config", default=None, help="YAML config file")
    r.add_argument("--full-refresh", action="store_true",
                   help="rebuild the incremental staging models from every raw file")
    r.set_defaults(func=cmd_run)

    bf = sub.add_parser("backfill", help="run the pipeline as of every date of a range, "
                                         "oldest first")
    bf.add_argument("--raw-dir", required=True)
    bf.add_argument("--warehouse", default=str(DEFAULT_WAREHOUSE))
    bf.add_argument("--start", required=True, help="first date (YYYY-MM-DD)")
    bf.add_argument("--end", required=True, help="last date (YYYY-MM-DD), inclusive")
    bf.add_argument("--config", default=None, help="YAML config file")
    bf.add_argument("--full-refresh", action="store_true",
                    help="the first date rebuilds the incremental models from every file")
    bf.set_defaults(func=cmd_backfill)

    d = sub.add_parser("demo", help="generate demo data and run the pipeline on it")
    d.add_argument("--users", type=positive, default=5_000)
    d.add_argument("--days", type=positive, default=365)
    d.add_argument("--seed", type=int, default=42)
    d.add_argument("--out", default=str(DEMO_DIR))
    d.add_argument("--warehouse", default=str(DEFAULT_WAREHOUSE))
    d.add_argument("--config", default=None)
    d.set_defaults(func=cmd_demo)

    u = sub.add_parser("ui", help="start the Dagster UI on 127.0.0.1")
    u.add_argument("--warehouse", default=str(DEFAULT_WAREHOUSE))
    u.add_argument("--raw-dir", default=str(DEMO_DIR / "raw"))
    u.add_argument("--config", default=None)
    u.add_argument("--port", type=int, default=3000)
    u.set_defaults(func=cmd_ui)

    e = sub.add_parser("evaluate", help="identity resolution against the generator's truth")
    e.add_argument("--warehouse", default=str(DEFAULT_WAREHOUSE))
    e.add_argument("--truth", default=str(DEMO_DIR / "truth"))
    e.set_defaults(func=cmd_evaluate)

    b = sub.add_parser("benchmark", help="generate data at a size, run the pipeline, print "
                                         "wall time and peak memory per stage (table + JSON)")
    b.add_argument("--size", choices=["demo", "medium", "large"], default="demo",
                   help="demo 5k users; medium 100k users / ~10M events; large 1M / ~100M")
    b.add_argument("--out", default=None, help="work folder (default ./benchmark_SIZE)")
    b.add_argument("--json", default=None, help="where to write the JSON (default OUT/"
                                                "benchmark.json)")
    b.add_argument("--config", default=None)
    b.add_argument("--no-floor", action="store_true",
                   help="skip running the compiled SQL directly in DuckDB")
    b.add_argument("--no-daily", action="store_true",
                   help="skip the next day's incremental run after the full one")
    b.add_argument("--reuse-data", action="store_true",
                   help="keep OUT/data when it was generated with the same settings")
    b.set_defaults(func=cmd_benchmark)

    c = sub.add_parser("config", help="list config keys and defaults, or --check FILE")
    c.add_argument("--check", default=None, metavar="FILE")
    c.set_defaults(func=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for name in ("ulm", "orchestration"):
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).setLevel(logging.INFO)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UserError, ConfigError) as exc:
        print(f"ulm: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ulm: interrupted", file=sys.stderr)
        return 130


def console() -> None:
    """The `ulm` command: main, then an exit that skips the interpreter's last garbage
    collections (orchestration/gc_settings.py). An uncaught error exits as usual."""
    from orchestration.gc_settings import exit_without_final_collections

    exit_without_final_collections(main())


if __name__ == "__main__":
    console()
