"""Validate one table against one suite with Great Expectations 1.x and return a result that
Dagster can show and `data_quality_results` can store.

GX runs in an ephemeral context (one per process, created on first use, or ahead of it on a
background thread by `prepare_in_background`: importing GX takes seconds) over a pandas frame
read from DuckDB. Tables larger than `max_rows` are validated on a repeatable random sample of
about that many rows, and the result says so; the exact row-level rules that matter most
(keys, not null, accepted values) are also dbt tests, which always see every row.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from expectations.suites import BLOCK, Expectation, Suite

DOCS_SITE = "ulm_data_docs"


@dataclass(frozen=True)
class Outcome:
    """One expectation's result."""
    check_name: str
    expectation: str
    column: str | None
    severity: str
    passed: bool
    observed_value: str
    failed_rows: int
    example: str


@dataclass
class SuiteResult:
    suite: str
    table: str
    stage: str
    rows_in_table: int
    rows_checked: int
    outcomes: list[Outcome] = field(default_factory=list)
    docs_page: str | None = None

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.passed]

    @property
    def blocking_failures(self) -> list[Outcome]:
        return [o for o in self.failed if o.severity == BLOCK]

    @property
    def passed(self) -> bool:
        return not self.failed

    def message(self) -> str:
        """Which expectation failed, on which table, how many rows, with an example."""
        if self.passed:
            return f"{self.table}: all {len(self.outcomes)} expectations passed"
        parts = []
        for o in self.failed:
            what = f"{o.check_name} ({o.expectation}"
            what += f" on column {o.column})" if o.column else ")"
            rows = f"{o.failed_rows:,} rows" if o.failed_rows else f"observed {o.observed_value}"
            example = f"; e.g. {o.example}" if o.example else ""
            parts.append(f"{what}: {rows}{example}")
        sampled = "" if self.rows_checked == self.rows_in_table else \
            f" (sample of {self.rows_checked:,} of {self.rows_in_table:,} rows)"
        return f"{self.table}{sampled}: " + "; ".join(parts)


_context_lock = threading.Lock()


def _context(docs_dir: str | None):
    """The process's GX context and pandas data source; a caller that arrives while another
    thread creates them waits for that one instead of importing GX a second time."""
    with _context_lock:
        return _new_context(docs_dir)


def prepare_in_background(docs_dir: Path | None) -> threading.Thread:
    """Import GX and create the context on a daemon thread, for a caller about to do other
    work first: a run starts it before dbt, whose queries leave the interpreter free, so the
    run's first suite does not wait ~1.5 s for the import. Returns the thread (tests join it)."""
    key = str(docs_dir) if docs_dir else None
    thread = threading.Thread(target=_prepare, args=(key,), name="ulm-gx-prepare", daemon=True)
    thread.start()
    return thread


def _prepare(docs_dir: str | None) -> None:
    # a failure here is raised again, with its traceback, by the first suite that needs GX
    with contextlib.suppress(Exception):
        _context(docs_dir)


@cache
def _new_context(docs_dir: str | None):
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    if docs_dir:
        from expectations.data_docs import site_config

        context.add_data_docs_site(DOCS_SITE, site_config(docs_dir))
    return context, context.data_sources.add_pandas("ulm")


def _gx_expectation(e: Expectation):
    import great_expectations.expectations as gxe

    cls = getattr(gxe, e.gx_type)
    return cls(**e.kwargs, meta={"check_name": e.name, "severity": e.severity})


def _columns(suite: Suite) -> list[str]:
    """Every column an expectation names (only those are read: less to convert to pandas)."""
    names: list[str] = []
    for e in suite.expectations:
        for key in ("column", "column_A", "column_B"):
            if key in e.kwargs:
                names.append(e.kwargs[key])
        names.extend(e.kwargs.get("column_list", []))
    return list(dict.fromkeys(names))


def read_table(con: duckdb.DuckDBPyConnection, suite: Suite, max_rows: int
               ) -> tuple[pd.DataFrame, int]:
    """The suite's frame (its SQL, or its table), sampled above max_rows. A column that an
    expectation names but the table lacks is left out, so `ExpectColumnToExist` says so."""
    sql = suite.sql or f"select * from {suite.table}"
    present = {name for name, *_ in con.execute(f"describe ({sql})").fetchall()}
    wanted = [c for c in _columns(suite) if c in present] or sorted(present)
    projected = "select " + ", ".join(f'"{c}"' for c in wanted) + f" from ({sql})"
    total = con.execute(f"select count(*) from ({sql})").fetchall()[0][0]
    if total > max_rows:
        # each row kept with probability max_rows / total (about max_rows rows, the same ones
        # every time): a reservoir of exactly max_rows copies every wide row through one
        # thread (2.4 of the 3.5 s it took to sample 4.2M churn training rows)
        projected += f" using sample bernoulli({100.0 * max_rows / total:.10f}%) repeatable (42)"
    return con.execute(projected).df(), total


def nanosecond_timestamps(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its naive timestamp columns in nanoseconds where their values fit
    (years 1678-2261). GX compares a datetime64[ns] column with a bound in one vectorised
    step, but a column of any other unit (DuckDB's are microseconds) value by value in
    Python: `occurred_at_not_in_future` on 200k staged events took 0.63 s, so 0.10 s. A
    column holding a value outside that range keeps its unit (and the slow, exact path)."""
    converted = {}
    for name, column in frame.items():
        if pd.api.types.is_datetime64_dtype(column.dtype) and \
                not pd.api.types.is_datetime64_ns_dtype(column.dtype):
            with contextlib.suppress(OverflowError, pd.errors.OutOfBoundsDatetime):
                converted[name] = column.dt.as_unit("ns")
    return frame.assign(**converted) if converted else frame


def _jsonable(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    try:
        return json.dumps(value, default=str)[:300]
    except (TypeError, ValueError):
        return str(value)[:300]


def _outcome(e: Expectation, r) -> Outcome:
    result = r.result or {}
    failed = int(result.get("unexpected_count") or 0)
    examples = result.get("partial_unexpected_list") or []
    observed = result.get("observed_value")
    if observed is None and result.get("unexpected_percent") is not None:
        observed = f"{result['unexpected_percent']:.4g}% unexpected"
    if r.exception_info and r.exception_info.get("raised_exception"):
        observed = "error: " + str(r.exception_info.get("exception_message"))[:200]
    return Outcome(check_name=e.name, expectation=e.gx_type, column=e.kwargs.get("column"),
                   severity=e.severity, passed=bool(r.success),
                   observed_value=_jsonable(observed) if observed is not None else "",
                   failed_rows=failed,
                   example=_jsonable(examples[0]) if examples else "")


def prune_docs(docs_dir: Path, suite_name: str, keep: int) -> None:
    """Remove the suite's oldest Data Docs validation pages so that `keep` remain with the
    one about to be written. GX rebuilds the site index from every page on disk after each
    validation: a year of daily runs (12k pages) made each check take 1.3 s instead of 0.2 s.
    The results themselves stay in data_quality_results."""
    # validations/<suite>/<run name>/<run time, an ISO timestamp>/<page>.html
    runs = sorted((run for name_dir in (docs_dir / "validations" / suite_name).glob("*")
                   for run in name_dir.glob("*") if run.is_dir()), key=lambda run: run.name)
    for run in runs[:max(len(runs) - (keep - 1), 0)]:
        shutil.rmtree(run, ignore_errors=True)


def validate(frame: pd.DataFrame, suite: Suite, rows_in_table: int | None = None,
             docs_dir: Path | None = None, docs_keep_runs: int = 30) -> SuiteResult:
    """Run every expectation of the suite on the frame (one GX checkpoint). An empty table
    breaks no row rule and has no mean to judge: every expectation passes, saying so (volume
    checks are what catch a source that did not arrive)."""
    if frame.empty:
        return SuiteResult(
            suite=suite.name, table=suite.table, stage=suite.stage, rows_in_table=0,
            rows_checked=0, outcomes=[Outcome(e.name, e.gx_type, e.kwargs.get("column"),
                                              e.severity, True, "no rows", 0, "")
                                      for e in suite.expectations])
    import great_expectations as gx

    context, source = _context(str(docs_dir) if docs_dir else None)
    name = suite.name
    # a suite is re-created on each run (its bounds depend on the run); the factories raise
    # different errors for a name they do not hold yet
    for existing in (context.checkpoints, context.validation_definitions, context.suites):
        with contextlib.suppress(Exception):
            existing.delete(name)
    try:
        asset = source.get_asset(name)
    except LookupError:
        asset = source.add_dataframe_asset(name)
    batch = next(iter(asset.batch_definitions), None) or \
        asset.add_batch_definition_whole_dataframe("whole")
    gx_suite = context.suites.add(gx.ExpectationSuite(
        name=name, expectations=[_gx_expectation(e) for e in suite.expectations]))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch, suite=gx_suite))
    actions = [gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=[DOCS_SITE])] \
        if docs_dir else []
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=name, validation_definitions=[definition], actions=actions,
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": 3}))
    if docs_dir:
        prune_docs(Path(docs_dir), name, docs_keep_runs)
    run = checkpoint.run(batch_parameters={"dataframe": nanosecond_timestamps(frame)})
    by_name = {e.name: e for e in suite.expectations}
    outcomes = []
    for validation in run.run_results.values():
        for r in validation.results:
            e = by_name[r.expectation_config.meta["check_name"]]
            outcomes.append(_outcome(e, r))
    page = None
    if docs_dir:
        pages = sorted(Path(docs_dir).glob(f"validations/{name}/**/*.html"),
                       key=lambda p: p.stat().st_mtime)
        page = str(pages[-1]) if pages else str(Path(docs_dir) / "index.html")
    return SuiteResult(suite=name, table=suite.table, stage=suite.stage,
                       rows_in_table=len(frame) if rows_in_table is None else rows_in_table,
                       rows_checked=len(frame), outcomes=outcomes, docs_page=page)


def run_suite(con: duckdb.DuckDBPyConnection, suite: Suite, max_rows: int,
              docs_dir: Path | None = None, docs_keep_runs: int = 30) -> SuiteResult:
    frame, total = read_table(con, suite, max_rows)
    return validate(frame, suite, total, docs_dir, docs_keep_runs)
