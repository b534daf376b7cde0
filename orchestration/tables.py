"""Writing pandas frames into the working database as typed tables."""

import duckdb
import pandas as pd


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
