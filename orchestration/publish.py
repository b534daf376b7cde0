"""Publish the marts of the working database as WAREHOUSE/serving.duckdb, atomically.

The serving file is built beside the old one under a temporary name and renamed over it in
one step, so a BI tool never sees a half-written database, a failed run leaves the previous
one untouched, and a reader holding the old file open keeps reading it undisturbed (the
rename replaces the directory entry, not the file it has open).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

SCHEMA = "marts"


@dataclass(frozen=True)
class Publication:
    path: Path
    tables: dict[str, int]  # table -> rows


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def publish_serving(work_db: Path, serving_db: Path, as_of_date: str, run_id: str) -> Publication:
    """Copy every table of schema `marts` (with its comments) into a new serving database and
    swap it in. Returns the table row counts."""
    serving_db = Path(serving_db)
    tmp = serving_db.with_name(f".{serving_db.name}.{run_id}.tmp")
    tmp.unlink(missing_ok=True)
    tables: dict[str, int] = {}
    try:
        with duckdb.connect(str(tmp)) as con:
            con.execute(f"ATTACH {_lit(str(work_db))} AS work (READ_ONLY)")
            con.execute(f"CREATE SCHEMA {SCHEMA}")
            names = [r[0] for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = 'work' "
                f"AND schema_name = {_lit(SCHEMA)} ORDER BY table_name").fetchall()]
            if not names:
                raise RuntimeError(f"{work_db} has no tables in schema {SCHEMA}: nothing to "
                                   "publish (did the dbt build run?)")
            for name in names:
                con.execute(f"CREATE TABLE {SCHEMA}.{_q(name)} AS "
                            f"SELECT * FROM work.{SCHEMA}.{_q(name)}")
                tables[name] = con.execute(
                    f"SELECT count(*) FROM {SCHEMA}.{_q(name)}").fetchall()[0][0]
            for name, comment in con.execute(
                "SELECT table_name, comment FROM duckdb_tables() WHERE database_name = 'work' "
                f"AND schema_name = {_lit(SCHEMA)} AND comment IS NOT NULL").fetchall():
                con.execute(f"COMMENT ON TABLE {SCHEMA}.{_q(name)} IS {_lit(comment)}")
            for name, column, comment in con.execute(
                "SELECT table_name, column_name, comment FROM duckdb_columns() "
                f"WHERE database_name = 'work' AND schema_name = {_lit(SCHEMA)} "
                "AND comment IS NOT NULL").fetchall():
                con.execute(f"COMMENT ON COLUMN {SCHEMA}.{_q(name)}.{_q(column)} "
                            f"IS {_lit(comment)}")
            con.execute(
                f"CREATE TABLE {SCHEMA}.ulm_publication AS SELECT "
                f"DATE {_lit(as_of_date)} AS as_of_date, {_lit(run_id)} AS run_id, "
                f"TIMESTAMP {_lit(datetime.now(UTC).strftime('%Y-%m-%d %H:%M:%S'))} "
                "AS published_at_utc"
            )
            con.execute("DETACH work")
            con.execute("CHECKPOINT")
        os.replace(tmp, serving_db)
    finally:
        tmp.unlink(missing_ok=True)
        Path(str(tmp) + ".wal").unlink(missing_ok=True)
    return Publication(serving_db, tables)
