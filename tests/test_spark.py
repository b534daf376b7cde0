"""The dbt project runs unchanged on Spark and gives the same results as DuckDB.

A small generated world is landed and built on DuckDB; the landing views are exported to
Parquet (Spark reads those where DuckDB reads its views, see macros/sources.sql); the same
models are built with `dbt run --target spark` (PySpark, local session mode) and every
table is compared with DuckDB's, row for row.

Slow (a JVM and a Spark session per dbt command, a few minutes) and needs the `spark` extra
and Java 17, so it is not part of `scripts/test`. Run it with:

    .cache/uv-bootstrap/bin/uv sync --frozen --extra spark
    .venv/bin/pytest -m slow tests/test_spark.py
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from conftest import RUN_BOOKKEEPING, RUN_LINEAGE, TEST_PII_KEY, run_dbt

from orchestration.config import dbt_vars, load_config
from orchestration.generator import GeneratorSettings, generate
from orchestration.landing import INCREMENTAL_SOURCES, SOURCES, land

pytestmark = pytest.mark.slow

# staging, the identity graph and the lifecycle models, with everything they read
SELECTION = ["path:models/staging", "tag:identity", "+int_person_day_stage", "+lifecycle_daily",
             "+user_lifecycle_history", "+lifecycle_transitions"]


def _spark_available() -> str | None:
    try:
        import dbt.adapters.spark  # noqa: F401
        import pyspark  # noqa: F401
    except ImportError:
        return "the spark extra is not installed (uv sync --frozen --extra spark)"
    if shutil.which("java") is None:
        return "Java 17 is not on PATH"
    return None


def dbt(args: list[str], vars_: dict, target: str) -> str:
    return run_dbt([*args, "--vars", json.dumps(vars_)],
                   Path(vars_["warehouse_dir"]) / f"dbt_target_{target}", target)


def export_sources(work: Path, out: Path) -> None:
    """The landing views and tables as Parquet files, one per source table."""
    tables = [("raw", s) for s in SOURCES]
    tables += [("raw", f"{s}__pending") for s in INCREMENTAL_SOURCES]
    tables += [("landing", "file_inventory"), ("landing", "pii_key")]
    with duckdb.connect(str(work), read_only=True) as con:
        for schema, table in tables:
            (out / schema).mkdir(parents=True, exist_ok=True)
            con.execute(f"COPY (SELECT * FROM {schema}.{table}) TO "
                        f"'{out / schema / table}.parquet' (FORMAT parquet)")


def built_models(work: Path) -> list[tuple[str, str]]:
    with duckdb.connect(str(work), read_only=True) as con:
        return con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name IN "
            "('staging', 'intermediate', 'marts') ORDER BY 1, 2").fetchall()


# columns holding the engine's own hash function's values (dbt macro key_hash): DuckDB's
# hash() and Spark's xxhash64 differ by design
ENGINE_HASHES = {"_event_key", "_staging_fingerprint"}


def normalised(relation: str, columns: list[tuple[str, str]]) -> str:
    """Values both engines must agree on: instants as UTC timestamps, numbers to 6 places,
    JSON text parsed (key order and spacing differ)."""
    exprs = []
    for name, kind in columns:
        if name in RUN_LINEAGE or name in ENGINE_HASHES:
            continue
        col = f'"{name}"'
        if kind.startswith("TIMESTAMP"):
            exprs.append(f"CAST({col} AS TIMESTAMP)")
        elif kind.startswith(("DECIMAL", "DOUBLE", "FLOAT")):
            exprs.append(f"round(CAST({col} AS DOUBLE), 6)")
        elif name == "properties":
            exprs.append(f"CAST(json({col}) AS VARCHAR)")
        else:
            exprs.append(col)
    return f"SELECT {', '.join(exprs)} FROM {relation}"


def test_staging_identity_and_lifecycle_equal_on_spark_and_duckdb(tmp_path):
    reason = _spark_available()
    if reason:
        pytest.skip(reason)
    settings = GeneratorSettings(users=300, days=60, seed=11, chunk_users=150)
    generate(tmp_path / "gen", settings)
    duck, spark = tmp_path / "duck", tmp_path / "spark"
    duck.mkdir()
    land(duck / "work.duckdb", tmp_path / "gen" / "raw", TEST_PII_KEY)
    export_sources(duck / "work.duckdb", tmp_path / "export")

    cfg = load_config(None)
    dbt(["run", "--select", *SELECTION], dbt_vars(cfg, settings.end_date, duck), "duckdb")
    spark_vars = {**dbt_vars(cfg, settings.end_date, spark),
                  "spark_source_dir": str(tmp_path / "export")}
    spark.mkdir()
    dbt(["run", "--select", *SELECTION], spark_vars, "spark")

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"ATTACH '{duck / 'work.duckdb'}' AS duck (READ_ONLY)")
    compared = []
    for schema, table in built_models(duck / "work.duckdb"):
        if f"{schema}.{table}" in RUN_BOOKKEEPING:
            continue
        columns = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE "
            "table_catalog = 'duck' AND table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position", [schema, table]).fetchall()
        files = spark / "spark" / "warehouse" / f"{schema}.db" / table
        assert files.is_dir(), f"Spark did not build {schema}.{table}"
        ours = normalised(f"duck.{schema}.{table}", columns)
        theirs = normalised(f"read_parquet('{files}/*.parquet')", columns)
        only_duck = con.execute(f"SELECT count(*) FROM ({ours} EXCEPT ALL {theirs})").fetchone()
        only_spark = con.execute(f"SELECT count(*) FROM ({theirs} EXCEPT ALL {ours})").fetchone()
        rows = con.execute(f"SELECT count(*) FROM duck.{schema}.{table}").fetchone()[0]
        compared.append((f"{schema}.{table}", rows, only_duck[0], only_spark[0]))
    print("compared (table, rows, only DuckDB, only Spark):", *compared, sep="\n  ")
    different = [c for c in compared if c[2] or c[3]]
    assert not different, f"tables that differ (table, rows, only DuckDB, only Spark): {different}"
    assert sum(rows for _, rows, _, _ in compared) > 0
