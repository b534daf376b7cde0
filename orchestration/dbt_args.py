"""Small pure functions that build dbt arguments and read dbt's results."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

# the Dagster ops that run dbt, one per stage (orchestration/assets.py builds them)
DBT_STAGE_OPS = ("ulm_dbt_staging", "ulm_dbt_models", "ulm_dbt_after_ml")


def resolve_as_of(as_of: str | None, business_timezone: str, now: datetime | None = None) -> str:
    """The run's business date: the given YYYY-MM-DD, or yesterday in the business time zone."""
    if as_of:
        try:
            return date.fromisoformat(as_of).isoformat()
        except ValueError:
            raise ValueError(f"--as-of {as_of!r} is not a date in YYYY-MM-DD form") from None
    now = now or datetime.now(ZoneInfo("UTC"))
    local_today = now.astimezone(ZoneInfo(business_timezone)).date()
    return (local_today - timedelta(days=1)).isoformat()


def dbt_build_args(dbt_vars: dict[str, Any], full_refresh: bool = False) -> list[str]:
    """`dbt build` of every model with its data tests. dbt unit tests check the SQL, not the
    data: they run in the test suite, not on every production run. A full refresh rebuilds
    the incremental models from every raw file."""
    return ["build", "--vars", json.dumps(dbt_vars, sort_keys=True),
            "--exclude-resource-type", "unit_test", *(["--full-refresh"] if full_refresh else [])]


def incremental_relations(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    """(schema, table) of every incremental model in a parsed manifest: a build finds them
    all in work.duckdb when it runs on top of an earlier complete one."""
    return sorted(
        (node["schema"], node.get("alias") or node["name"])
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["config"].get("materialized") == "incremental"
    )


def build_threads(dbt_threads: int, daily_dbt_threads: int, full_refresh: bool,
                  missing_incremental: list[tuple[str, str]],
                  staged_again: list[str] | None = None) -> tuple[int, str]:
    """dbt's threads for a build, and why (for the run's log): `daily_dbt_threads` when it
    builds on an earlier one (no full refresh, no incremental model missing, no source whose
    every row the run's staging build wrote again), else `dbt_threads`. A model built from
    every raw file can need the whole memory limit; a day's changes need a fraction. A
    source staged again whole (a new PII key, another source time zone: its rows' staging
    fingerprint changed) makes the models after it rebuild every person, like a first build."""
    if full_refresh:
        return dbt_threads, "a full refresh"
    if missing_incremental:
        return dbt_threads, f"{len(missing_incremental)} incremental models not built yet"
    if staged_again:
        return dbt_threads, f"every row of {', '.join(staged_again)} staged again"
    return daily_dbt_threads, "its incremental models built before"


def dbt_unit_test_args(dbt_vars: dict[str, Any]) -> list[str]:
    return ["test", "--select", "test_type:unit", "--vars", json.dumps(dbt_vars, sort_keys=True)]


def summarize_failures(run_results: dict[str, Any], limit: int = 8) -> str:
    """One line per failed model or test: what failed and dbt's message."""
    lines = []
    for result in run_results.get("results", []):
        if result.get("status") not in ("error", "fail", "runtime error"):
            continue
        unique_id = result.get("unique_id", "?")
        kind, _, name = unique_id.partition(".")
        name = name.split(".", 1)[-1]
        message = (result.get("message") or "").strip().splitlines()
        failures = result.get("failures")
        detail = message[0] if message else ""
        if kind == "test" and failures:
            detail = f"{failures} failing rows. {detail}".strip()
        lines.append(f"{kind} {name}: {detail}")
    if not lines:
        return "dbt failed before running any model (see the dbt log in the Dagster run)."
    more = len(lines) - limit
    text = "; ".join(lines[:limit])
    return text + (f"; and {more} more" if more > 0 else "")
