"""Schema drift: each raw file's columns against the contract, before any transformation.

A file that lacks a required column (or every identifier column), that seems to have renamed
one, or whose typed column (Parquet) has a type the contract cannot hold, is reported with
the file, the column and what was expected. CSV and JSON Lines carry no types: their values
are typed, and quarantined row by row, in staging.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

REQUIRED = {
    "events": ["event_id", "event_type", "occurred_at"],
    "orders": ["order_id", "ordered_at", "amount"],
    "customers": ["user_id", "updated_at"],
    "campaign_touches": ["touch_id", "campaign_id", "sent_at", "group"],
    "privacy_requests": ["request_id", "request_type", "requested_at"],
}
# sources whose rows name their person by any one of these columns (the file needs one)
ONE_OF = {
    "events": ["user_id", "anonymous_id", "email", "phone"],
    "orders": ["user_id", "anonymous_id", "email", "phone"],
    "campaign_touches": ["user_id", "anonymous_id", "email", "phone"],
    "privacy_requests": ["user_id", "email", "phone"],
}
TIMESTAMP = ("TIMESTAMP", "DATE", "VARCHAR")
NUMBER = ("DECIMAL", "DOUBLE", "FLOAT", "REAL", "INTEGER", "BIGINT", "SMALLINT", "TINYINT",
          "HUGEINT", "UBIGINT", "UINTEGER", "USMALLINT", "UTINYINT", "VARCHAR")
TEXT = ("VARCHAR", "BIGINT", "INTEGER", "HUGEINT", "UBIGINT", "UINTEGER", "SMALLINT")
BOOLEAN = ("BOOLEAN", "VARCHAR", "INTEGER", "BIGINT", "TINYINT")
JSON_TEXT = ("VARCHAR", "STRUCT", "MAP", "JSON")
EXPECTED_TYPES = {
    "event_id": TEXT, "order_id": TEXT, "touch_id": TEXT, "request_id": TEXT,
    "campaign_id": TEXT, "user_id": TEXT, "anonymous_id": TEXT, "event_type": ("VARCHAR",),
    "request_type": ("VARCHAR",), "group": ("VARCHAR",), "status": ("VARCHAR",),
    "occurred_at": TIMESTAMP, "ordered_at": TIMESTAMP, "updated_at": TIMESTAMP,
    "sent_at": TIMESTAMP, "requested_at": TIMESTAMP, "signup_at": TIMESTAMP,
    "birth_date": TIMESTAMP, "amount": NUMBER, "cost": NUMBER, "birth_year": NUMBER,
    "marketing_consent": BOOLEAN, "properties": JSON_TEXT,
}


@dataclass(frozen=True)
class SchemaProblem:
    source: str
    path: str
    column: str
    kind: str        # missing_required_column, renamed_column, missing_identifier, wrong_type
    message: str


def _family(duckdb_type: str) -> str:
    """TIMESTAMP_NS, TIMESTAMP WITH TIME ZONE -> TIMESTAMP; DECIMAL(18,2) -> DECIMAL."""
    kind = duckdb_type.upper()
    if kind.endswith("[]"):
        return "LIST"
    match = re.match(r"[A-Z]+", kind)
    return match.group(0) if match else kind


TIMESTAMP_COLUMNS = {"occurred_at", "ordered_at", "updated_at", "sent_at", "requested_at"}


def _likely_rename(missing: str, unknown: list[str]) -> str | None:
    """An unknown column that probably is the missing one: a similar name, or for a
    timestamp a time-like name (event_time, created_date, ts)."""
    by_lower = {u.lower(): u for u in unknown}
    close = difflib.get_close_matches(missing, list(by_lower), n=1, cutoff=0.5)
    if close:
        return by_lower[close[0]]
    if missing in TIMESTAMP_COLUMNS:
        timeish = [u for u in unknown if re.search(r"(time|date|_at$|^ts$|_ts$)", u.lower())]
        if len(timeish) == 1:
            return timeish[0]
    return None


def file_problems(source: str, path: str, fmt: str, columns: list[list[str]],
                  known: list[str]) -> list[SchemaProblem]:
    """What is wrong with one file's columns. `columns` are [name, DuckDB type]; `known` is
    every contract column of the source. Names match case-insensitively, as landing does."""
    if not columns:
        return []  # an empty file: nothing to read, nothing lost
    present = {name.lower(): kind for name, kind in columns}
    unknown = [name for name, _ in columns if name.lower() not in known]
    problems = []
    for col in REQUIRED[source]:
        if col in present:
            continue
        guess = _likely_rename(col, unknown)
        expected = f"Expected `{col}` ({', '.join(REQUIRED[source])} are required for {source})."
        if guess:
            problems.append(SchemaProblem(
                source, path, col, "renamed_column",
                f"{path}: required column `{col}` is missing and the file has `{guess}`, "
                f"which the contract does not know: renamed? {expected}"))
        else:
            problems.append(SchemaProblem(
                source, path, col, "missing_required_column",
                f"{path}: required column `{col}` is missing (the file has "
                f"{', '.join(n for n, _ in columns)}). {expected}"))
    if source in ONE_OF and not any(c in present for c in ONE_OF[source]):
        problems.append(SchemaProblem(
            source, path, "|".join(ONE_OF[source]), "missing_identifier",
            f"{path}: no identifier column: expected at least one of "
            f"{', '.join(ONE_OF[source])}."))
    if fmt == "parquet":
        for name, kind in columns:
            allowed = EXPECTED_TYPES.get(name.lower())
            if allowed and _family(kind) not in allowed:
                problems.append(SchemaProblem(
                    source, path, name.lower(), "wrong_type",
                    f"{path}: column `{name}` has type {kind}; expected one of "
                    f"{', '.join(allowed)}."))
    return problems
