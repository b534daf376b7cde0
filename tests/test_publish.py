import duckdb
import pytest

from orchestration.publish import publish_serving


def make_work(path, value):
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists marts")
        con.execute(f"create or replace table marts.dim_users as select {value} as user_key")
        con.execute("comment on table marts.dim_users is 'One row per person.'")
        con.execute("create schema if not exists staging")
        con.execute("create or replace table staging.secret as select 'x' as email")


def test_publishes_only_marts_with_comments(tmp_path):
    work, serving = tmp_path / "work.duckdb", tmp_path / "serving.duckdb"
    make_work(work, 1)
    pub = publish_serving(work, serving, "2026-01-01", "run1")
    assert pub.tables == {"dim_users": 1}
    with duckdb.connect(str(serving), read_only=True) as con:
        schemas = {r[0] for r in con.execute(
            "select distinct schema_name from duckdb_tables()").fetchall()}
        assert schemas == {"marts"}
        assert con.execute("select comment from duckdb_tables() where table_name = 'dim_users'"
                           ).fetchall() == [("One row per person.",)]
        assert con.execute("select as_of_date::varchar, run_id from marts.ulm_publication"
                           ).fetchall() == [("2026-01-01", "run1")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["serving.duckdb", "work.duckdb"]


def test_reader_holding_old_file_is_not_blocked_and_sees_old_data(tmp_path):
    work, serving = tmp_path / "work.duckdb", tmp_path / "serving.duckdb"
    make_work(work, 1)
    publish_serving(work, serving, "2026-01-01", "run1")
    reader = duckdb.connect(str(serving), read_only=True)  # a BI tool keeps it open
    make_work(work, 2)
    publish_serving(work, serving, "2026-01-02", "run2")
    assert reader.execute("select user_key from marts.dim_users").fetchall() == [(1,)]
    reader.close()
    with duckdb.connect(str(serving), read_only=True) as con:
        assert con.execute("select user_key from marts.dim_users").fetchall() == [(2,)]


def test_failed_publish_leaves_previous_serving_intact(tmp_path):
    work, serving = tmp_path / "work.duckdb", tmp_path / "serving.duckdb"
    make_work(work, 1)
    publish_serving(work, serving, "2026-01-01", "run1")
    before = serving.read_bytes()
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    with pytest.raises(RuntimeError, match="nothing to publish"):
        publish_serving(empty, serving, "2026-01-02", "run2")
    assert serving.read_bytes() == before
    assert not list(tmp_path.glob(".serving*"))
