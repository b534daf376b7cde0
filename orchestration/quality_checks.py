"""Dagster asset checks between every stage: wiring only; the rules are in expectations/.

- schema drift of every raw file (before any transformation), blocking;
- Great Expectations suites on staging, the identity graph, the marts, the churn training set
  and scores, and the CLV and win-back outputs, each expectation blocking or warning;
- volume and freshness of each source;
- every result appended to `data_quality_results`, GX Data Docs built into
  WAREHOUSE/data_docs/ and linked from the check.

A blocking check that fails stops every asset downstream of the one it checks, and with them
the publish of the serving database.
"""


import json
from collections.abc import Callable
from datetime import timedelta

import dagster as dg
import duckdb

from expectations import results, runner, schema, suites, volume
from expectations.results import ResultRow
from orchestration.assets import _model_key
from orchestration.churn_assets import SCORES_KEY
from orchestration.config import KNOWN_EVENT_TYPES, UlmConfig
from orchestration.dbt_args import resolve_as_of
from orchestration.landing import SOURCE_COLUMNS, SOURCES
from orchestration.resources import UlmSettings
from orchestration.value_assets import CLV_KEY, WINBACK_KEY


def run_as_of(context, cfg: UlmConfig) -> str:
    """The run's business date: the `as_of` tag (`ulm run` and the schedule set it), else
    the `as_of` of the ops' run config (a launch from the UI), else yesterday."""
    as_of = context.run.tags.get("as_of", "")
    if not as_of:
        ops = (context.run.run_config or {}).get("ops", {})
        as_of = next((op.get("config", {}).get("as_of", "") for op in ops.values()
                      if isinstance(op, dict) and op.get("config", {}).get("as_of")), "")
    return resolve_as_of(as_of, cfg.business_timezone)


def suite_params(con: duckdb.DuckDBPyConnection, cfg: UlmConfig) -> suites.SuiteParams:
    newest_file = con.execute(
        "select max(make_timestamp(mtime_ns // 1000)) from landing.file_inventory").fetchall()
    newest = newest_file[0][0]
    latest = newest + timedelta(hours=cfg.quality.future_tolerance_hours) if newest else None
    return suites.SuiteParams(latest_timestamp=latest, staging_runs=newest_staging_runs(con),
                              min_label_rate=cfg.quality.min_label_rate,
                              max_label_rate=cfg.quality.max_label_rate,
                              min_labelled_rows=cfg.quality.min_labelled_rows,
                              winback_budget=cfg.winback.budget,
                              known_event_types=list(KNOWN_EVENT_TYPES))


def newest_staging_runs(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """source -> `_staging_run` of its newest staging build, for the sources whose staging
    logs its builds (dbt macro log_staging_build)."""
    runs = {}
    for source in SOURCES:
        log = con.execute(
            "select 1 from duckdb_tables() where schema_name = 'staging' and table_name = ?",
            [f"stg_{source}__all__builds"]).fetchall()
        if log:
            newest = con.execute(f"select _staging_run from staging.stg_{source}__all__builds "
                                 "order by built_at desc limit 1").fetchall()
            if newest:
                runs[source] = newest[0][0]
    return runs


def _churn_features(con: duckdb.DuckDBPyConnection) -> list[str]:
    from ml import churn

    empty = con.execute("select * from intermediate.int_churn_features limit 0").df()
    return churn.feature_columns(empty)


def _rows(result: runner.SuiteResult) -> list[ResultRow]:
    return [ResultRow(stage=result.stage, table_name=result.table, check_name=o.check_name,
                      passed=o.passed, severity=o.severity, observed_value=o.observed_value,
                      expectation=o.expectation, column_name=o.column,
                      failed_rows=o.failed_rows, example=o.example,
                      rows_checked=result.rows_checked) for o in result.outcomes]


def _failures_md(result: runner.SuiteResult) -> str:
    lines = ["| expectation | severity | column | failed rows | observed | example |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {o.check_name} | {o.severity} | {o.column or ''} | {o.failed_rows:,} | "
              f"{o.observed_value[:60]} | {o.example[:60]} |" for o in result.failed]
    return "\n".join(lines)


def run_suite_check(context, ulm: UlmSettings, build: Callable) -> dg.AssetCheckResult:
    cfg = ulm.load_config()
    as_of = run_as_of(context, cfg)
    docs = ulm.data_docs_dir(cfg)
    with ulm.connect_work() as con:
        suite = build(suite_params(con, cfg), con)
        result = runner.run_suite(con, suite, cfg.quality.max_rows_validated, docs,
                                  cfg.quality.data_docs_keep_runs)
        results.record(con, context.run.run_id, as_of, _rows(result))
    blocking = bool(result.blocking_failures)
    if not result.passed:
        log = context.log.error if blocking else context.log.warning
        log(f"data quality {'BLOCKED' if blocking else 'warning'}: {result.message()}")
    metadata = {"table": suite.table, "stage": suite.stage, "rows": suite.scope,
                "rows_in_table": result.rows_in_table, "rows_checked": result.rows_checked,
                "expectations": len(result.outcomes), "failed": len(result.failed)}
    if result.failed:
        metadata["failures"] = dg.MetadataValue.md(_failures_md(result))
    if result.docs_page:
        metadata["data_docs"] = dg.MetadataValue.path(result.docs_page)
    return dg.AssetCheckResult(
        passed=result.passed,
        severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
        description=result.message()[:1000], metadata=metadata)


def _suite_check(asset_key: dg.AssetKey, suite: suites.Suite, build: Callable):
    @dg.asset_check(asset=asset_key, name=f"gx_{suite.name}", blocking=suite.blocking,
                    description=f"Great Expectations suite `{suite.name}` on {suite.table} "
                                f"({suite.stage}): {len(suite.expectations)} expectations.")
    def _check(context: dg.AssetCheckExecutionContext, ulm: UlmSettings):
        return run_suite_check(context, ulm, build)

    return _check


def _by_name(factory: Callable, name: str) -> Callable:
    """A builder for one suite of a factory, evaluated with the run's parameters."""
    def build(params, con):
        return next(s for s in factory(params) if s.name == name)
    return build


def _churn_build(name: str) -> Callable:
    def build(params, con):
        return next(s for s in suites.churn_suites(params, _churn_features(con))
                    if s.name == name)
    return build


SUITE_ASSETS = {
    # suite name -> asset it checks
    **{f"stg_{s}": _model_key(f"stg_{s}") for s in SOURCES},
    "int_identity_map": _model_key("int_identity_map"),
    "source_reconciliation": _model_key("source_reconciliation"),
    "dim_users": _model_key("dim_users"),
    "user_lifecycle_history": _model_key("user_lifecycle_history"),
    "lifecycle_daily": _model_key("lifecycle_daily"),
    "lifecycle_daily_adds_up": _model_key("lifecycle_daily"),
    "kpi_daily": _model_key("kpi_daily"),
    "cohort_retention": _model_key("cohort_retention"),
    "rfm_segments": _model_key("rfm_segments"),
    "churn_reasons": _model_key("churn_reasons"),
    "campaign_effect": _model_key("campaign_effect"),
    "churn_training_set": _model_key("int_churn_features"),
    "user_churn_scores": SCORES_KEY,
    "user_clv": CLV_KEY,
    "clv_model_params": CLV_KEY,
    "winback_targets": WINBACK_KEY,
}


def gx_checks() -> list:
    template = suites.SuiteParams()
    checks = []
    for factory in (suites.staging_suites, suites.identity_suites, suites.mart_suites,
                    suites.value_suites):
        for suite in factory(template):
            checks.append(_suite_check(SUITE_ASSETS[suite.name], suite,
                                       _by_name(factory, suite.name)))
    for suite in suites.churn_suites(template, []):
        checks.append(_suite_check(SUITE_ASSETS[suite.name], suite, _churn_build(suite.name)))
    return checks


# ---------------------------------------------------------------------------------------
# schema drift (raw files) and volume / freshness (staged rows)


def _schema_check(source: str):
    @dg.asset_check(asset=dg.AssetKey(["raw", source]), name="schema_drift", blocking=True,
                    description=f"Every {source} file has the contract's required columns "
                                "(and an identifier column), no renamed ones, and (Parquet) "
                                "types the contract can hold.")
    def _check(context: dg.AssetCheckExecutionContext, ulm: UlmSettings):
        cfg = ulm.load_config()
        as_of = run_as_of(context, cfg)
        with ulm.connect_work() as con:
            files = con.execute("select path, format, columns from landing.file_inventory "
                                "where source = ? order by path", [source]).fetchall()
            problems = [p for path, fmt, cols in files
                        for p in schema.file_problems(source, path, fmt,
                                                      json.loads(cols or "[]"),
                                                      SOURCE_COLUMNS[source])]
            rows = [ResultRow("ingest", f"raw.{source}", f"{p.kind}:{p.column}", False,
                              "block", p.message, "schema_drift", p.column, 0, "",
                              len(files)) for p in problems]
            rows = rows or [ResultRow("ingest", f"raw.{source}", "schema_drift", True, "block",
                                      f"{len(files)} files match the contract",
                                      "schema_drift", None, 0, "", len(files))]
            results.record(con, context.run.run_id, as_of, rows)
        for p in problems:
            context.log.error(p.message)
        return dg.AssetCheckResult(
            passed=not problems, severity=dg.AssetCheckSeverity.ERROR,
            description=" ".join(p.message for p in problems[:5])[:1000] or
            f"{len(files)} files match the contract",
            metadata={"files": len(files), "problems": len(problems)})

    return _check


def _volume_check(source: str):
    @dg.asset_check(asset=_model_key(f"stg_{source}"), name="volume_and_freshness",
                    blocking=True,
                    description=f"Rows of {source} on the as-of day against the days before, "
                                "and the newest day against the as-of date.")
    def _check(context: dg.AssetCheckExecutionContext, ulm: UlmSettings):
        cfg = ulm.load_config()
        q = cfg.quality
        as_of = run_as_of(context, cfg)
        rules = volume.VolumeRules(q.volume_history_days, q.volume_min_history_days,
                                   q.volume_min_daily_rows, q.volume_min_ratio,
                                   q.volume_max_ratio, q.freshness_max_lag_days,
                                   q.volume_severity)
        with ulm.connect_work() as con:
            counts = volume.daily_counts(con, source, as_of, cfg.business_timezone,
                                         q.volume_history_days)
            rows = volume.judge(source, as_of, counts, rules)
            results.record(con, context.run.run_id, as_of, rows)
        failed = [r for r in rows if not r.passed]
        for r in failed:
            context.log.error(f"{r.check_name}: {r.observed_value}")
        block = q.volume_severity == "block"
        return dg.AssetCheckResult(
            passed=not failed,
            severity=dg.AssetCheckSeverity.ERROR if block else dg.AssetCheckSeverity.WARN,
            description="; ".join(f"{r.check_name}: {r.observed_value}" for r in rows)[:1000],
            metadata={r.check_name: r.observed_value for r in rows})

    return _check


def all_checks() -> list:
    return [*(_schema_check(s) for s in SOURCES), *(_volume_check(s) for s in SOURCES),
            *gx_checks()]
