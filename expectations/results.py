"""`data_quality_results`: every check result of every run, appended in the working
database's `marts` schema (published with the other marts)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import pandas as pd

TABLE = "marts.data_quality_results"
COLUMNS = {
    "run_id": "varchar", "as_of_date": "date", "stage": "varchar", "check_name": "varchar",
    "passed": "boolean", "severity": "varchar", "observed_value": "varchar",
    "table_name": "varchar", "expectation": "varchar", "column_name": "varchar",
    "failed_rows": "bigint", "example": "varchar", "rows_checked": "bigint",
    "checked_at": "timestamp",
}


@dataclass(frozen=True)
class ResultRow:
    stage: str
    table_name: str
    check_name: str
    passed: bool
    severity: str
    observed_value: str = ""
    expectation: str = ""
    column_name: str | None = None
    failed_rows: int = 0
    example: str = ""
    rows_checked: int | None = None


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists marts")
    con.execute(f"create table if not exists {TABLE} ("
                + ", ".join(f"{c} {t}" for c, t in COLUMNS.items()) + ")")


def record(con: duckdb.DuckDBPyConnection, run_id: str, as_of: str,
           rows: Iterable[ResultRow]) -> int:
    """Append the rows; a re-run of the same check in the same run replaces its rows."""
    ensure_table(con)
    frame = pd.DataFrame([r.__dict__ for r in rows])
    if frame.empty:
        return 0
    frame["run_id"] = run_id
    frame["as_of_date"] = pd.Timestamp(as_of).date()
    frame["checked_at"] = datetime.now(UTC).replace(tzinfo=None)
    con.register("_dq", frame[list(COLUMNS)])
    con.execute(f"delete from {TABLE} where run_id = ? and (table_name, check_name) in "
                "(select table_name, check_name from _dq)", [run_id])
    con.execute(f"insert into {TABLE} select "
                + ", ".join(f"cast({c} as {t})" for c, t in COLUMNS.items()) + " from _dq")
    con.unregister("_dq")
    return len(frame)


def run_summary(con: duckdb.DuckDBPyConnection, run_id: str) -> dict:
    """Counts and failures of one run, for the end-of-run data-health summary (read-only:
    a run stopped before any check has no table yet)."""
    exists = con.execute("select count(*) from duckdb_tables() where schema_name = 'marts' "
                         "and table_name = 'data_quality_results'").fetchall()[0][0]
    if not exists:
        return {"checks": 0, "passed": 0, "blocking_failed": 0, "warnings": 0, "failures": []}
    counts = con.execute(
        f"select count(*), count(*) filter (where passed), "
        f"count(*) filter (where not passed and severity = 'block'), "
        f"count(*) filter (where not passed and severity = 'warn') from {TABLE} "
        "where run_id = ?", [run_id]).fetchall()[0]
    failures = con.execute(
        f"select severity, stage, table_name, check_name, failed_rows, observed_value, example "
        f"from {TABLE} where run_id = ? and not passed "
        "order by severity, stage, table_name, check_name", [run_id]).fetchall()
    return {"checks": counts[0], "passed": counts[1], "blocking_failed": counts[2],
            "warnings": counts[3], "failures": failures}


def dbt_test_rows(run_results: dict, manifest: dict, stage: str) -> list[ResultRow]:
    """One row per dbt test of one dbt build (dbt's `error` severity blocks)."""
    rows = []
    nodes = manifest.get("nodes", {})
    for r in run_results.get("results", []):
        uid = r.get("unique_id", "")
        if not uid.startswith("test."):
            continue
        node = nodes.get(uid, {})
        parents = node.get("depends_on", {}).get("nodes", [])
        severity = node.get("config", {}).get("severity", "error").lower()
        failures = int(r.get("failures") or 0)
        status = r.get("status")
        rows.append(ResultRow(
            stage=stage, table_name=parents[0].split(".")[-1] if parents else "",
            check_name=node.get("name", uid.split(".")[-1]),
            passed=status == "pass", severity="warn" if severity == "warn" else "block",
            observed_value=f"{status}: {failures} failing rows" if failures else str(status),
            expectation="dbt_test", failed_rows=failures))
    return rows
