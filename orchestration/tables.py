"""Connecting to the working database, and writing pandas frames into it as typed tables."""

from pathlib import Path

import duckdb
import pandas as pd


def connect_work(work_db: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the working database. A writer does not checkpoint when it closes:
    a checkpoint of a large database costs ~0.2 s however little was written (0.21-0.27 s
    after a one-row insert into the 12 GB database of 100M events, measured; a run has about 40
    such writers, the checks' results among them).
    The writes stay in the write-ahead log, durable, until a checkpoint folds them in: DuckDB's
    own once the log passes its threshold (a large write skips the log), dbt's next build,
    or the publish step's explicit one (`checkpoint_work`)."""
    con = duckdb.connect(str(work_db), read_only=read_only)
    if not read_only:
        con.execute("PRAGMA disable_checkpoint_on_shutdown")
    return con


def checkpoint_work(work_db: Path) -> None:
    """Fold the write-ahead log into the database file, so that the file alone holds the run
    (a copy of work.duckdb, the benchmark's SQL floor, a backup)."""
    with duckdb.connect(str(work_db)) as con:
        con.execute("CHECKPOINT")


def build_state(work_db: Path, tables: list[tuple[str, str]], sources: list[str]
                ) -> tuple[list[tuple[str, str]], list[str]]:
    """What a dbt build's threads depend on, read in one connection: those of the (schema,
    table) pairs that work.duckdb does not hold (all of them when the file does not exist
    yet), and those of the sources whose newest staging build wrote every row again."""
    if not Path(work_db).exists():
        return list(tables), []
    with connect_work(work_db, read_only=True) as con:
        return missing_tables(con, tables), staged_again(con, sources)


def missing_tables(con: duckdb.DuckDBPyConnection, tables: list[tuple[str, str]]
                   ) -> list[tuple[str, str]]:
    """Those of the (schema, table) pairs that the database does not hold."""
    present = set(con.execute("select schema_name, table_name from duckdb_tables() "
                              "where database_name = current_database()").fetchall())
    return [t for t in tables if t not in present]


def staged_again(con: duckdb.DuckDBPyConnection, sources: list[str]) -> list[str]:
    """The sources whose newest staging build wrote every row again: its logged staging
    fingerprint (`staging.stg_<source>__all__builds`, macros/incremental.sql) differs from
    the build's before it. A source without such a log, or whose last two builds do not both
    name their fingerprint (a log an older version wrote), counts as not staged again."""
    logs = {name for (name,) in con.execute(
        "select table_name from duckdb_columns() where database_name = current_database() "
        "and schema_name = 'staging' and column_name = 'fingerprint'").fetchall()}
    again = []
    for source in sources:
        log = f"stg_{source}__all__builds"
        if log not in logs:
            continue
        last_two = [fp for (fp,) in con.execute(
            f"select fingerprint from staging.{log} order by built_at desc limit 2"
        ).fetchall()]
        if len(last_two) == 2 and None not in last_two and last_two[0] != last_two[1]:
            again.append(source)
    return again


def replace_table(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame,
                  columns: dict[str, str]) -> None:
    """Create `table` with exactly these typed columns from `frame` (empty frames too)."""
    con.execute(f"create or replace table {table} ("
                + ", ".join(f"{c} {t}" for c, t in columns.items()) + ")")
    if not frame.empty:
        con.register("_frame", frame[list(columns)])
        con.execute(f"insert into {table} select "
                    + ", ".join(f"cast({c} as {t})" for c, t in columns.items())
                    + " from _frame")
        con.unregister("_frame")
