"""Volume and freshness of each source, from its staged rows per business day.

- Volume: rows on the as-of day against the median of the days before it (the last
  `history_days`). A source that arrived at a tenth of its usual size fails.
- Freshness: days between the newest business day with rows and the as-of date. A source
  that did not arrive fails.

Both are judged only for a source with an established rhythm (rows on at least
`min_history_days` of the history window and a median of at least `min_daily_rows` a day):
a sparse source (privacy requests, monthly campaigns) or a young one has no "usual" to
compare with, and says so instead of failing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from expectations.results import ResultRow

TIMESTAMP_COLUMNS = {
    "events": "occurred_at", "orders": "ordered_at", "customers": "updated_at",
    "campaign_touches": "sent_at", "privacy_requests": "requested_at",
}


@dataclass(frozen=True)
class VolumeRules:
    history_days: int = 28
    min_history_days: int = 14
    min_daily_rows: int = 20
    min_ratio: float = 0.3
    max_ratio: float = 5.0
    max_lag_days: int = 1
    severity: str = "block"


def daily_counts(con: duckdb.DuckDBPyConnection, source: str, as_of: str, timezone: str,
                 history_days: int) -> dict:
    """Rows per business day in the window ending on the as-of date, and the newest day.

    The window is a range of the stored UTC timestamp (business midnights converted to UTC),
    so DuckDB skips row groups outside it instead of converting every row's time zone; the
    whole table is read only when the window is empty, to find the newest day before it."""
    col = TIMESTAMP_COLUMNS[source]
    day = f"cast(timezone('{timezone}', timezone('UTC', {col})) as date)"
    start, end = (f"timezone('UTC', timezone('{timezone}', cast(date '{as_of}' {shift} as "
                  "timestamp)))" for shift in (f"- {history_days}", "+ 1"))
    rows = con.execute(f"""
        select {day} as d, count(*) from staging.stg_{source}
        where {col} >= {start} and {col} < {end}
        group by d""").fetchall()
    by_day = {d: n for d, n in rows}
    if by_day:
        newest = max(by_day)
    else:
        newest = con.execute(f"select max({day}) from staging.stg_{source} where {col} < {end}"
                             ).fetchall()[0][0]
    return {"by_day": by_day, "newest": newest}


def judge(source: str, as_of, counts: dict, rules: VolumeRules) -> list[ResultRow]:
    """The volume and freshness results of one source (pure: counts in, rows out)."""
    as_of = dt.date.fromisoformat(str(as_of))
    by_day = counts["by_day"]
    history = [by_day.get(as_of - dt.timedelta(days=k), 0)
               for k in range(1, rules.history_days + 1)]
    days_with_rows = sum(1 for n in history if n > 0)
    median = sorted(history)[len(history) // 2] if history else 0
    established = days_with_rows >= rules.min_history_days and median >= rules.min_daily_rows
    table = f"staging.stg_{source}"
    today = by_day.get(as_of, 0)
    if not established:
        note = (f"not judged: rows on {days_with_rows} of the last {rules.history_days} days, "
                f"median {median}/day (needs {rules.min_history_days} days and "
                f"{rules.min_daily_rows}/day)")
        return [ResultRow("ingest", table, f"{source}_volume", True, rules.severity, note,
                          "volume_against_history"),
                ResultRow("ingest", table, f"{source}_freshness", True, rules.severity, note,
                          "newest_day_against_as_of")]
    ratio = today / median
    volume_ok = rules.min_ratio <= ratio <= rules.max_ratio
    newest = counts["newest"]
    lag = (as_of - newest).days if newest else None
    fresh = lag is not None and lag <= rules.max_lag_days
    return [
        ResultRow("ingest", table, f"{source}_volume", volume_ok, rules.severity,
                  f"{today} rows on {as_of} = {ratio:.2f} x the median {median} of the "
                  f"{rules.history_days} days before (allowed {rules.min_ratio}-"
                  f"{rules.max_ratio})", "volume_against_history"),
        ResultRow("ingest", table, f"{source}_freshness", fresh, rules.severity,
                  f"newest day {newest} is {lag} days before {as_of} (allowed "
                  f"{rules.max_lag_days})" if newest else "no rows at all up to the as-of date",
                  "newest_day_against_as_of"),
    ]
