"""The landing zone: find every raw file, check it can be read, and expose each source to dbt.

For each source folder this module
- lists every file (any depth), by format (CSV, Parquet, JSON Lines, optionally gzipped),
- checks each new file can be read and counts its rows (files are immutable once landed, so
  a file seen before with the same size and modification time is not read again),
- writes the inventory to the working database (`landing.file_inventory`, the `raw_rows` side
  of reconciliation), and
- creates one view per source (`raw.<source>`) that reads all its files with every contract
  column as text, matched case-insensitively, plus `_extra` (unknown columns as a JSON object),
  `_file`, `_row`, `_parse_error` (a JSON line that is not JSON) and `_file_modified_at`.

dbt's staging models read those views: typing, normalising, deduplicating and quarantining
happen there, set-based. A file that cannot be read stops the run with a message naming it.
"""

from __future__ import annotations

import json
import logging
import os
import queue
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from orchestration.tables import connect_work

log = logging.getLogger(__name__)

IDENTIFIERS = ["user_id", "anonymous_id", "email", "phone"]
SOURCE_COLUMNS: dict[str, list[str]] = {
    "events": ["event_id", "event_type", "occurred_at", "channel", *IDENTIFIERS, "amount",
               "currency", "order_id", "properties"],
    "orders": ["order_id", "ordered_at", "amount", "currency", "status", "channel", "store_id",
               "updated_at", *IDENTIFIERS],
    "customers": ["user_id", "updated_at", "email", "phone", "name", "gender", "birth_date",
                  "birth_year", "country", "region", "city", "signup_at", "acquisition_channel",
                  "marketing_consent"],
    "campaign_touches": ["touch_id", "campaign_id", "campaign_type", "sent_at", "channel", "offer",
                         "cost", "group", *IDENTIFIERS],
    "privacy_requests": ["request_id", "request_type", "requested_at", "user_id", "email",
                         "phone"],
}
SOURCES = list(SOURCE_COLUMNS)
# sources staged incrementally: their staging model reads raw.<source>__pending, the files it
# has not staged yet (dbt_project/macros/incremental.sql)
INCREMENTAL_SOURCES = {"events": "staging.stg_events__all", "orders": "staging.stg_orders__all",
                       "customers": "staging.stg_customers__all",
                       "campaign_touches": "staging.stg_campaign_touches__all"}
# columns holding nested JSON that must stay JSON text, not DuckDB's struct rendering
JSON_COLUMNS = {"properties"}
_FORMATS = {".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet", ".jsonl": "json",
            ".ndjson": "json", ".jsonl.gz": "json", ".ndjson.gz": "json"}


# files read at once while taking the inventory (one per core, at most 4)
INVENTORY_THREADS = min(4, os.cpu_count() or 1)
# new files from which the inventory's reads take seconds (~450 files a second on 2 cores: a
# year of medium data, 899 files, in 2.0 s), long enough to do other work beside them
LONG_READ_FILES = 400


class LandingError(Exception):
    """A raw file that cannot be used; the message names the file and what to do."""


@dataclass(frozen=True)
class RawFile:
    source: str
    path: str
    fmt: str
    size: int
    mtime_ns: int


def file_format(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in sorted(_FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return _FORMATS[suffix]
    return None


def scan_raw_dir(raw_dir: Path) -> tuple[list[RawFile], list[str]]:
    """Every data file under raw_dir/<source>/ (any depth), and the paths that were skipped
    (unknown extensions, hidden files) so they can be reported, not silently ignored."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise LandingError(f"raw dir {raw_dir} does not exist or is not a folder.")
    files, skipped = [], []
    for source in SOURCES:
        folder = raw_dir / source
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if not path.is_file():
                continue
            fmt = file_format(path)
            if fmt is None or any(part.startswith((".", "_")) for part in
                                  path.relative_to(folder).parts):
                skipped.append(str(path))
                continue
            st = path.stat()
            files.append(RawFile(source, str(path.resolve()), fmt, st.st_size, st.st_mtime_ns))
    return files, skipped


def _sql_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def _csv_reader(paths: list[str]) -> str:
    return (f"read_csv({_sql_list(paths)}, all_varchar = true, "
            "filename = true, header = true, delim = ',', quote = '\"', escape = '\"', "
            "hive_partitioning = false, auto_detect = true)")


def _parquet_reader(paths: list[str]) -> str:
    return (f"read_parquet({_sql_list(paths)}, filename = true, "
            "file_row_number = true, hive_partitioning = false)")


def _json_lines(paths: list[str]) -> str:
    # read JSON Lines as text lines so that a malformed line is kept (and quarantined) instead
    # of failing the file or being skipped silently
    return (f"read_csv({_sql_list(paths)}, columns = {{'line': 'VARCHAR'}}, header = false, "
            "delim = '\\x01', quote = '', escape = '', filename = true, "
            "hive_partitioning = false, auto_detect = false)")


def inspect_file(con: duckdb.DuckDBPyConnection, f: RawFile) -> tuple[int, list[list[str]]]:
    """Rows in one file and [name, type] of each of its columns, reading it once where the
    format allows (each CSV and JSON Lines file was read twice, to count and for its
    columns: a day's CRM file at 1M users 40 → 23 ms, a day's events in JSON Lines 72 → 23
    ms, measured); raises LandingError naming the file when it cannot be read.

    Columns: JSON Lines, every key of any line (typed VARCHAR); CSV, every header (VARCHAR:
    CSV has no types); Parquet, the file's schema."""
    if f.size == 0:
        return 0, []
    try:
        if f.fmt == "json":
            return _inspect_json_lines(con, f.path)
        if f.fmt == "csv":
            return _inspect_csv(con, f.path)
        reader = _parquet_reader([f.path])
        (rows,), = con.execute(f"SELECT count(*) FROM {reader}").fetchall()
        return int(rows), _describe(con, reader)
    except duckdb.Error as exc:
        raise LandingError(
            f"{f.source} file {f.path} cannot be read as {f.fmt}: {_reason(exc)} "
            "Landed files are immutable: move this one out of the raw dir (or fix it and land "
            "it under a new name) and run again."
        ) from exc


def _inspect_json_lines(con: duckdb.DuckDBPyConnection, path: str
                        ) -> tuple[int, list[list[str]]]:
    # one parse of each line serves both answers (the CTE is read twice, computed once);
    # the line count is of non-blank lines, as the raw view reads them
    found = con.execute(f"""
        WITH lines AS (
            SELECT try(json(line)) AS j FROM {_json_lines([path])} WHERE trim(line) <> ''
        )
        SELECT NULL AS key, count(*) AS n FROM lines
        UNION ALL
        SELECT DISTINCT unnest(json_keys(j)), NULL FROM lines
        WHERE j IS NOT NULL AND json_type(j) = 'OBJECT'""").fetchall()
    rows = next(n for key, n in found if key is None)
    return int(rows), sorted([key, "VARCHAR"] for key, _ in found if key is not None)


def _inspect_csv(con: duckdb.DuckDBPyConnection, path: str) -> tuple[int, list[list[str]]]:
    # the count and any one row (a struct whose keys are the headers, in order) come from one
    # read; DuckDB sniffs each file it opens, which costs more than reading a day's file
    reader = _csv_reader([path])
    (rows, row), = con.execute(f"SELECT count(*), any_value(t) FROM {reader} AS t").fetchall()
    if row is None:  # a header without rows
        return int(rows), _describe(con, reader)
    return int(rows), [[name, "VARCHAR"] for name in row if name not in _READER_COLUMNS]


def inspect_files(con: duckdb.DuckDBPyConnection, files: list[RawFile]
                  ) -> list[tuple[int, list[list[str]]]]:
    """inspect_file of each file, in order, INVENTORY_THREADS files at a time: a small file's
    read is mostly DuckDB's sniffing and parsing on one thread, which leaves the machine's
    other cores idle (the first landing of a year at 1M users took 57 s, most of it here).
    The first file in order that cannot be read raises its LandingError."""
    threads = min(INVENTORY_THREADS, len(files))
    if threads <= 1:
        return [inspect_file(con, f) for f in files]
    # a connection of its own for each file being read (made here: a DuckDB connection is
    # not to be shared between threads, nor its cursors made from several at once)
    cursors = queue.SimpleQueue()
    for _ in range(threads):
        cursors.put(con.cursor())

    def inspect(f: RawFile) -> tuple[int, list[list[str]]]:
        cursor = cursors.get()
        try:
            return inspect_file(cursor, f)
        finally:
            cursors.put(cursor)

    try:
        with ThreadPoolExecutor(threads, thread_name_prefix="ulm-landing") as pool:
            return list(pool.map(inspect, files))
    finally:
        while not cursors.empty():
            cursors.get().close()


# columns the readers add (the file's name, a Parquet row's position)
_READER_COLUMNS = frozenset({"filename", "file_row_number"})


def _describe(con: duckdb.DuckDBPyConnection, reader: str) -> list[list[str]]:
    return [[name, str(kind)] for name, kind, *_ in
            con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()
            if name not in _READER_COLUMNS]


def _reason(exc: Exception) -> str:
    """DuckDB's explanation up to its first blank line, without the offending line's text
    (it may hold personal data) and without its option dump."""
    lines = []
    for line in str(exc).strip().splitlines():
        if not line.strip():
            break
        if not line.startswith("Original Line"):
            lines.append(line.strip().rstrip("."))
    return ". ".join(lines) + "."


INVENTORY_COLUMNS = ["source", "path", "format", "size_bytes", "mtime_ns", "rows", "columns"]


def build_inventory(con: duckdb.DuckDBPyConnection, files: list[RawFile],
                    before_long_read: Callable[[], object] | None = None) -> list[dict]:
    """Row counts and columns of every file, reusing those of files already seen unchanged;
    the new files are read INVENTORY_THREADS at a time. `before_long_read` is called first
    when there are at least LONG_READ_FILES of them (a first run, a backfill)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS landing")
    con.execute(
        "CREATE TABLE IF NOT EXISTS landing.file_inventory (source VARCHAR, path VARCHAR, "
        "format VARCHAR, size_bytes BIGINT, mtime_ns BIGINT, rows BIGINT)"
    )
    # the columns of each file, for the schema-drift check (added after the first release)
    con.execute("ALTER TABLE landing.file_inventory ADD COLUMN IF NOT EXISTS columns VARCHAR")
    known = {
        (p, s, m): (r, c)
        for p, s, m, r, c in con.execute(
            "SELECT path, size_bytes, mtime_ns, rows, columns FROM landing.file_inventory"
        ).fetchall()
    }
    seen = [known.get((f.path, f.size, f.mtime_ns), (None, None)) for f in files]
    new = [f for f, (n, columns) in zip(files, seen, strict=True) if n is None or columns is None]
    if before_long_read is not None and len(new) >= LONG_READ_FILES:
        before_long_read()
    inspected = dict(zip(new, inspect_files(con, new), strict=True))
    rows = []
    for f, (n, columns) in zip(files, seen, strict=True):
        if f in inspected:
            n, file_columns = inspected[f]
            columns = json.dumps(file_columns)
        rows.append({"source": f.source, "path": f.path, "format": f.fmt, "size_bytes": f.size,
                     "mtime_ns": f.mtime_ns, "rows": n, "columns": columns})
    con.execute("DELETE FROM landing.file_inventory")
    if rows:
        # one INSERT of a frame: executemany ran one statement a file (the landing step took
        # 6.2 s for 4,501 files, 1.2 s now)
        frame = pd.DataFrame(rows, columns=INVENTORY_COLUMNS)
        con.register("_inventory", frame)
        con.execute(f"INSERT INTO landing.file_inventory ({', '.join(INVENTORY_COLUMNS)}) "
                    f"SELECT {', '.join(INVENTORY_COLUMNS)} FROM _inventory")
        con.unregister("_inventory")
    return rows


def _column_map(columns: list[list[str]]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Lower-cased name -> actual column names (several when files differ only in case), and
    actual name -> type, from the columns the inventory recorded for a file."""
    cols: dict[str, list[str]] = {}
    types: dict[str, str] = {}
    for name, column_type in columns:
        if name not in types:
            cols.setdefault(name.lower(), []).append(name)
        types[name] = column_type
    return cols, types


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _typed_select(relation_sql: str, columns: list[list[str]], known: list[str], fmt: str
                  ) -> str:
    cols, types = _column_map(columns)

    def as_text(actual: str) -> str:
        nested = types[actual].upper().startswith(("STRUCT", "MAP", "JSON")) or \
            types[actual].upper().endswith("[]")
        if nested:
            return f"CAST(to_json({_quote(actual)}) AS VARCHAR)"
        return f"CAST({_quote(actual)} AS VARCHAR)"

    parts = []
    for col in known:
        actual = cols.get(col, [])
        if not actual:
            parts.append(f"CAST(NULL AS VARCHAR) AS {_quote(col)}")
        elif len(actual) == 1:
            parts.append(f"{as_text(actual[0])} AS {_quote(col)}")
        else:
            parts.append(f"coalesce({', '.join(as_text(a) for a in actual)}) AS {_quote(col)}")
    internal = {"filename", "file_row_number"}
    extra = [a for lower, names in cols.items() if lower not in known and lower not in internal
             for a in names]
    if extra:
        pairs = ", ".join(f"'{a.lower()}', {as_text(a)}" for a in extra)
        parts.append(f"CAST(json_object({pairs}) AS VARCHAR) AS _extra")
    else:
        parts.append("CAST(NULL AS VARCHAR) AS _extra")
    parts.append("filename AS _file")
    row = "file_row_number + 1" if fmt == "parquet" else "NULL"
    parts.append(f"CAST({row} AS BIGINT) AS _row")
    parts.append("CAST(NULL AS VARCHAR) AS _parse_error")
    return f"SELECT {', '.join(parts)} FROM {relation_sql}"


def _json_select(paths: list[str], keys: list[str], known: list[str]) -> str:
    lines = f"(SELECT line, filename, try(json(line)) AS j FROM {_json_lines(paths)} " \
            "WHERE trim(line) <> '')"
    by_lower: dict[str, list[str]] = {}
    for k in keys:
        by_lower.setdefault(k.lower(), []).append(k)

    def value(k: str) -> str:
        path = "'$.\"" + k.replace("'", "''").replace('"', '\\"') + "\"'"
        # nested objects stay JSON text; scalars become their plain text
        return (f"CASE WHEN json_type(j, {path}) IN ('OBJECT', 'ARRAY') "
                f"THEN CAST(json_extract(j, {path}) AS VARCHAR) "
                f"ELSE json_extract_string(j, {path}) END")

    parts = []
    for col in known:
        actual = by_lower.get(col, [])
        expr = "coalesce(" + ", ".join(value(a) for a in actual) + ")" if actual else "NULL"
        parts.append(f"CAST({expr} AS VARCHAR) AS {_quote(col)}")
    extra = [a for lower, names in by_lower.items() if lower not in known for a in names]
    if extra:
        pairs = ", ".join(f"'{a.lower()}', json_extract(j, '$.\"{a}\"')" for a in extra)
        parts.append(f"CAST(json_object({pairs}) AS VARCHAR) AS _extra")
    else:
        parts.append("CAST(NULL AS VARCHAR) AS _extra")
    parts.append("filename AS _file")
    parts.append("CAST(NULL AS BIGINT) AS _row")
    parts.append("CASE WHEN j IS NULL OR json_type(j) <> 'OBJECT' THEN left(line, 200) END "
                 "AS _parse_error")
    return f"SELECT {', '.join(parts)} FROM {lines}"


def source_view_sql(source: str, files: list[dict]) -> str:
    """One SELECT over every non-empty file of a source, all formats, as text columns.

    The columns of each file come from the inventory (read once, when the file first
    landed). Files with the same columns are read together by one reader; no reader unions
    files by name, which makes DuckDB open and sniff every file at once (with thousands of
    small files that reserved ~30 MB per file and ran out of memory)."""
    known = SOURCE_COLUMNS[source]
    readable = [f for f in files if f["size_bytes"] > 0]
    branches = []
    for fmt, reader in (("csv", _csv_reader), ("parquet", _parquet_reader)):
        groups: dict[str, list[str]] = {}
        for f in readable:
            if f["format"] == fmt:
                groups.setdefault(f["columns"], []).append(f["path"])
        for columns, paths in groups.items():
            branches.append(_typed_select(reader(paths), json.loads(columns), known, fmt))
    json_files = [f for f in readable if f["format"] == "json"]
    if json_files:
        keys = sorted({name for f in json_files for name, _ in json.loads(f["columns"])})
        branches.append(_json_select([f["path"] for f in json_files], keys, known))
    if not branches:
        empty = ", ".join(f"CAST(NULL AS VARCHAR) AS {_quote(c)}" for c in known)
        return (f"SELECT {empty}, CAST(NULL AS VARCHAR) AS _extra, CAST(NULL AS VARCHAR) AS "
                "_file, CAST(NULL AS BIGINT) AS _row, CAST(NULL AS VARCHAR) AS _parse_error, "
                "CAST(NULL AS TIMESTAMP) AS _file_modified_at WHERE false")
    # each row carries when its file was last written (UTC), so staging can tell a timestamp
    # that cannot be true yet from one that is merely late
    body = "\nUNION ALL\n".join(branches)
    return (f"SELECT u.*, i.modified_at AS _file_modified_at FROM ({body}) AS u LEFT JOIN "
            "(SELECT path, make_timestamp(mtime_ns // 1000) AS modified_at "
            "FROM landing.file_inventory) AS i ON u._file = i.path")


def staged_files(con: duckdb.DuckDBPyConnection, staged_table: str) -> set[tuple[str, int]]:
    """(path, mtime in microseconds) of every file the staging table holds rows of; empty
    before its first build."""
    schema, table = staged_table.split(".")
    exists = con.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = ? AND "
        "table_name = ? AND column_name = '_file_modified_at'", [schema, table]).fetchone()[0]
    if not exists:
        return set()
    return set(con.execute(
        f"SELECT DISTINCT _file, epoch_us(_file_modified_at) FROM {staged_table}").fetchall())


def pending_files(files: list[dict], staged: set[tuple[str, int]]) -> list[dict]:
    """The files whose current version is not staged: new files and changed files."""
    return [f for f in files if (f["path"], f["mtime_ns"] // 1000) not in staged]


def unstaged_files(files: list[dict], staged: set[tuple[str, int]]) -> list[tuple[str, int]]:
    """(path, mtime in microseconds) of the staged file versions that are gone: the file was
    withdrawn or rewritten since. Their rows must leave the staging table."""
    current = {(f["path"], f["mtime_ns"] // 1000) for f in files}
    return sorted(staged - current)


def land(work_db: Path, raw_dir: Path, pii_key: str,
         before_long_read: Callable[[], object] | None = None) -> dict[str, dict]:
    """Inventory the raw dir and (re)create the raw.<source> views in the working database.
    Returns per-source file and row counts. `before_long_read`: see build_inventory."""
    files, skipped = scan_raw_dir(raw_dir)
    for path in skipped:
        log.warning("ignoring %s: not a CSV, Parquet or JSON Lines file (or hidden)", path)
    work_db.parent.mkdir(parents=True, exist_ok=True)
    with connect_work(work_db) as con:
        inventory = build_inventory(con, files, before_long_read)
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        # the staged file versions that are gone, so staging deletes their rows without
        # scanning every staged row for them (see dbt_project/macros/incremental.sql)
        con.execute("CREATE OR REPLACE TABLE landing.unstaged_files (source VARCHAR, path VARCHAR, "
                    "modified_at TIMESTAMP)")
        summary = {}
        for source in SOURCES:
            mine = [f for f in inventory if f["source"] == source]
            view_sql = source_view_sql(source, mine)
            con.execute(f"CREATE OR REPLACE VIEW raw.{source} AS {view_sql}")
            if source in INCREMENTAL_SOURCES:
                staged = staged_files(con, INCREMENTAL_SOURCES[source])
                pending = pending_files(mine, staged)
                gone = unstaged_files(mine, staged)
                if gone:
                    con.executemany("INSERT INTO landing.unstaged_files VALUES "
                                    "(?, ?, make_timestamp(?))",
                                    [(source, path, mtime_us) for path, mtime_us in gone])
                con.execute(f"CREATE OR REPLACE VIEW raw.{source}__pending AS "
                            f"{source_view_sql(source, pending)}")
            summary[source] = {
                "files": len(mine),
                "empty_files": sum(1 for f in mine if f["rows"] == 0),
                "rows": sum(f["rows"] for f in mine),
                "bytes": sum(f["size_bytes"] for f in mine),
            }
        # the key for keyed hashes of personal data lives only in the working database, so it
        # never appears in compiled SQL, logs or the serving database
        con.execute("CREATE OR REPLACE TABLE landing.pii_key AS SELECT ? AS key", [pii_key])
        summary["_skipped_files"] = {"files": len(skipped)}
    return summary
