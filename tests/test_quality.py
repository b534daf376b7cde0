"""The data-quality pieces alone: GX suites run by the runner on hand-made frames, schema
drift rules, volume and freshness, and the results table."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from expectations import results, runner, schema, suites, volume
from expectations.suites import Suite


def test_runner_reports_which_expectation_failed_how_many_rows_and_an_example():
    frame = pd.DataFrame({"order_id": ["o1", "o2", "o2", None],
                          "amount": [10.0, -5.0, 3.0, 1.0],
                          "status": ["completed", "completed", "lost", "refunded"]})
    suite = Suite("orders_demo", "staging.stg_orders", "staging", [
        suites.not_null("order_id"), suites.unique("order_id"),
        suites.between("amount", low=0), suites.in_set("status", suites.ORDER_STATUSES),
        suites.Expectation("status_is_completed", "ExpectColumnValuesToBeInSet",
                           {"column": "status", "value_set": ["completed"]}, suites.WARN),
    ])
    result = runner.validate(frame, suite)
    by_name = {o.check_name: o for o in result.outcomes}
    assert not by_name["order_id_not_null"].passed
    assert by_name["order_id_not_null"].failed_rows == 1
    assert not by_name["order_id_unique"].passed and by_name["order_id_unique"].failed_rows == 2
    assert not by_name["amount_in_range"].passed and by_name["amount_in_range"].example == "-5.0"
    assert by_name["status_in_set"].example == '"lost"'
    assert by_name["status_is_completed"].severity == "warn"
    assert {o.check_name for o in result.blocking_failures} == {
        "order_id_not_null", "order_id_unique", "amount_in_range", "status_in_set"}
    message = result.message()
    assert "staging.stg_orders" in message and "amount_in_range" in message
    assert "1 rows; e.g. -5.0" in message


def test_runner_passes_clean_data_and_samples_large_tables(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema marts")
    con.execute("create table marts.t as select range as id, range % 7 as v from range(5000)")
    suite = Suite("t_demo", "marts.t", "marts", [suites.unique("id"), suites.between("v", 0, 6)])
    result = runner.run_suite(con, suite, max_rows=1000)
    assert result.passed and result.rows_in_table == 5000
    assert 850 <= result.rows_checked <= 1150  # each row kept with probability 1000 / 5000
    # repeatable: the same sample each time
    again = runner.read_table(con, suite, 1000)[0]
    assert sorted(again["id"]) == sorted(runner.read_table(con, suite, 1000)[0]["id"])
    assert len(set(again["id"])) == len(again) and again["id"].max() > 4000  # spread out


def test_a_daily_staging_suite_validates_the_rows_its_staging_build_wrote(tmp_path):
    from orchestration.quality_checks import newest_staging_runs

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema staging")
    # yesterday's build left a row without an event type; today's build wrote two good rows
    con.execute("""create table staging.stg_events as select * from (values
        ('e1', null, 'web', 'u1', 'run-1'), ('e2', 'login', 'web', 'u2', 'run-2'),
        ('e3', 'login', 'pos', 'u3', 'run-2'))
        t(event_id, event_type, channel, user_id, _staging_run)""")
    for column in ("anonymous_id", "email_hash", "phone_hash"):
        con.execute(f"alter table staging.stg_events add column {column} varchar")
    con.execute("""create table staging.stg_events__all__builds as select * from (values
        ('run-2', timestamptz '2026-11-22 03:00+00'), ('run-1', timestamptz '2026-11-21 03:00+00'))
        t(_staging_run, built_at)""")

    def events_suite(params):
        suite = next(s for s in suites.staging_suites(params) if s.name == "stg_events")
        return Suite(suite.name, suite.table, suite.stage,
                     [suites.not_null("event_type"), suites.unique("event_id"),
                      suites.always_true("has_identifier")], suite.sql, suite.scope)

    assert newest_staging_runs(con) == {"events": "run-2"}
    daily = runner.run_suite(con, events_suite(suites.SuiteParams(
        staging_runs=newest_staging_runs(con))), max_rows=1000)
    assert daily.passed and daily.rows_in_table == 2
    assert "run-2" in events_suite(suites.SuiteParams(staging_runs={"events": "run-2"})).scope
    # without a build log (an older warehouse) every row is validated
    whole = runner.run_suite(con, events_suite(suites.SuiteParams()), max_rows=1000)
    assert not whole.passed and whole.rows_in_table == 3
    # a bad row written by the newest build fails it
    con.execute("insert into staging.stg_events values ('e4', null, 'web', 'u4', 'run-2', "
                "null, null, null)")
    assert not runner.run_suite(con, events_suite(suites.SuiteParams(
        staging_runs=newest_staging_runs(con))), max_rows=1000).passed


def test_lifecycle_stages_add_up_to_the_people_seen_by_each_day():
    """Each day's stage counts in lifecycle_daily equal the people whose history began on
    or before it: a person seen on the 2nd counts from the 2nd; a day one short fails."""
    con = duckdb.connect()
    con.execute("create schema marts")
    con.execute("""create table marts.user_lifecycle_history as select * from (values
        ('a', date '2026-01-01'), ('a', date '2026-01-02'), ('b', date '2026-01-02'))
        t(user_key, valid_from)""")
    con.execute("""create table marts.lifecycle_daily as select * from (values
        (date '2026-01-01', 'new', 1), (date '2026-01-02', 'active', 1),
        (date '2026-01-02', 'new', 1), (date '2026-01-03', 'active', 2))
        t(date, lifecycle_stage, users)""")
    suite = next(s for s in suites.mart_suites(suites.SuiteParams())
                 if s.name == "lifecycle_daily_adds_up")
    assert runner.run_suite(con, suite, max_rows=1000).passed
    con.execute("update marts.lifecycle_daily set users = 1 where date = '2026-01-03'")
    result = runner.run_suite(con, suite, max_rows=1000)
    assert [(o.check_name, o.failed_rows) for o in result.failed] == [
        ("stages_equal_people_seen", 1)]


def test_data_docs_keep_the_last_runs_of_a_suite(tmp_path):
    suite = Suite("docs_demo", "marts.d", "marts", [suites.not_null("x")])
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    pages = []
    for _ in range(4):
        pages.append(runner.validate(frame, suite, docs_dir=tmp_path, docs_keep_runs=2).docs_page)
    kept = sorted(str(p) for p in (tmp_path / "validations" / "docs_demo").glob("**/*.html"))
    assert kept == sorted(pages[-2:])
    assert len(set(pages)) == 4  # each run wrote its own page
    assert (tmp_path / "index.html").exists()


def test_empty_tables_pass_and_say_so():
    suite = Suite("empty_demo", "marts.e", "marts", [
        suites.not_null("x"), suites.unique("x"),
        suites.Expectation("mean_in_range", "ExpectColumnMeanToBeBetween",
                           {"column": "x", "min_value": 0, "max_value": 1})])
    result = runner.validate(pd.DataFrame({"x": pd.Series([], dtype="float64")}), suite)
    assert result.passed and result.rows_checked == 0
    assert {o.observed_value for o in result.outcomes} == {"no rows"}


def test_a_column_of_nulls_passes_range_rules_without_a_percentage():
    # GX reports no unexpected_percent when every value is null (CLV not fitted yet)
    suite = Suite("nulls_demo", "marts.n", "marts", [suites.between("clv", low=0),
                                                     suites.between("p_alive", 0, 1)])
    frame = pd.DataFrame({"clv": [None, None], "p_alive": [None, None]}, dtype="float64")
    result = runner.validate(frame, suite)
    assert result.passed


def test_timestamp_rules_catch_the_future_and_wrong_types():
    params = suites.SuiteParams(latest_timestamp=dt.datetime(2026, 11, 22))
    suite = Suite("ts_demo", "staging.x", "staging", suites.timestamp("occurred_at", params))
    good = pd.DataFrame({"occurred_at": pd.to_datetime(["2026-11-20 10:00", "2026-11-21 00:00"])})
    assert runner.validate(good, suite).passed
    future = pd.DataFrame({"occurred_at": pd.to_datetime(["2026-11-20 00:00", "2099-01-01 00:00"])})
    failed = {o.check_name for o in runner.validate(future, suite).failed}
    assert failed == {"occurred_at_not_in_future"}
    text = pd.DataFrame({"occurred_at": ["2026-11-20"]})
    assert "occurred_at_is_timestamp" in {o.check_name for o in runner.validate(text, suite).failed}


def test_timestamps_read_from_duckdb_are_judged_in_nanoseconds_where_they_fit(tmp_path):
    # DuckDB hands pandas microseconds; GX compares only nanosecond columns with a bound
    # in one step (any other unit value by value, 0.6 s for 200k rows)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema staging")
    con.execute("create table staging.x as select * from (values "
                "(timestamp '2026-11-20 10:00:00.123456', timestamp '2026-11-20 00:00'), "
                "(timestamp '2099-01-01 00:00', timestamp '2500-01-01 00:00')) "
                "as v(occurred_at, sent_at)")
    params = suites.SuiteParams(latest_timestamp=dt.datetime(2026, 11, 22))
    suite = Suite("ts_units", "staging.x", "staging",
                  [*suites.timestamp("occurred_at", params), *suites.timestamp("sent_at", params)])
    frame, _ = runner.read_table(con, suite, 1000)
    assert str(frame["occurred_at"].dtype) == "datetime64[us]"
    judged = runner.nanosecond_timestamps(frame)
    assert str(judged["occurred_at"].dtype) == "datetime64[ns]"
    assert judged["occurred_at"].tolist() == frame["occurred_at"].tolist()  # same instants
    # the year 2500 does not fit in nanoseconds: that column keeps its unit, and its rules
    assert str(judged["sent_at"].dtype) == "datetime64[us]"
    by_name = {o.check_name: o for o in runner.validate(frame, suite).outcomes}
    assert not by_name["occurred_at_not_in_future"].passed
    assert by_name["occurred_at_not_in_future"].failed_rows == 1
    assert "2099-01-01" in by_name["occurred_at_not_in_future"].example
    assert not by_name["sent_at_not_in_future"].passed
    assert "2500-01-01" in by_name["sent_at_not_in_future"].example
    assert by_name["occurred_at_is_timestamp"].passed and by_name["sent_at_is_timestamp"].passed


KNOWN = ["event_id", "event_type", "occurred_at", "channel", "user_id", "anonymous_id",
         "email", "phone", "amount", "currency", "order_id", "properties"]


def test_schema_drift_names_file_column_and_expectation():
    ok = schema.file_problems("events", "e.csv", "csv",
                              [["EVENT_ID", "VARCHAR"], ["event_type", "VARCHAR"],
                               ["occurred_at", "VARCHAR"], ["user_id", "VARCHAR"]], KNOWN)
    assert ok == []
    renamed = schema.file_problems("events", "r.csv", "csv",
                                   [["event_id", "VARCHAR"], ["event_type", "VARCHAR"],
                                    ["occurred_time", "VARCHAR"], ["user_id", "VARCHAR"]], KNOWN)
    assert [p.kind for p in renamed] == ["renamed_column"]
    assert "r.csv" in renamed[0].message and "`occurred_time`" in renamed[0].message
    timeish = schema.file_problems("events", "t.csv", "csv",
                                   [["event_id", "VARCHAR"], ["event_type", "VARCHAR"],
                                    ["event_time", "VARCHAR"], ["user_id", "VARCHAR"]], KNOWN)
    assert [(p.kind, p.column) for p in timeish] == [("renamed_column", "occurred_at")]
    assert "`event_time`" in timeish[0].message
    missing = schema.file_problems("events", "m.csv", "csv",
                                   [["event_id", "VARCHAR"], ["event_type", "VARCHAR"]], KNOWN)
    assert {p.kind for p in missing} == {"missing_required_column", "missing_identifier"}
    typed = schema.file_problems("events", "t.parquet", "parquet",
                                 [["event_id", "BIGINT"], ["event_type", "VARCHAR"],
                                  ["occurred_at", "TIMESTAMP_NS"], ["user_id", "VARCHAR"],
                                  ["amount", "DECIMAL(18,2)"], ["properties", "STRUCT(a INT)"]],
                                 KNOWN)
    assert typed == []
    wrong = schema.file_problems("events", "w.parquet", "parquet",
                                 [["event_id", "VARCHAR"], ["event_type", "VARCHAR"],
                                  ["occurred_at", "BOOLEAN"], ["user_id", "VARCHAR"]], KNOWN)
    assert [(p.kind, p.column) for p in wrong] == [("wrong_type", "occurred_at")]
    assert schema.file_problems("events", "empty.csv", "csv", [], KNOWN) == []


def _counts(today: int, usual: int, days: int = 28, newest_lag: int = 0) -> dict:
    as_of = dt.date(2026, 11, 21)
    by_day = {as_of - dt.timedelta(days=k): usual for k in range(1, days + 1)}
    by_day[as_of] = today
    if today == 0:
        del by_day[as_of]
    return {"by_day": by_day, "newest": as_of - dt.timedelta(days=newest_lag)}


def test_volume_catches_a_tenth_of_the_usual_and_a_source_that_did_not_arrive():
    rules = volume.VolumeRules()
    usual = {r.check_name: r.passed for r in volume.judge("events", "2026-11-21",
                                                            _counts(1000, 1000), rules)}
    assert usual == {"events_volume": True, "events_freshness": True}
    tenth = {r.check_name: r for r in volume.judge("events", "2026-11-21", _counts(100, 1000),
                                                   rules)}
    assert not tenth["events_volume"].passed and "0.10 x the median 1000" in \
        tenth["events_volume"].observed_value
    missing = {r.check_name: r.passed for r in volume.judge(
        "events", "2026-11-21", _counts(0, 1000, newest_lag=3), rules)}
    assert missing == {"events_volume": False, "events_freshness": False}
    flood = volume.judge("events", "2026-11-21", _counts(6000, 1000), rules)
    assert not flood[0].passed


def test_daily_counts_use_business_days_at_the_window_edges():
    """Rows are counted on their business day (Shanghai, UTC+8), the window's first and last
    business days included and nothing outside; with no row in the window the newest day
    comes from before it."""
    con = duckdb.connect()
    con.execute("create schema staging")
    con.execute("create table staging.stg_events (occurred_at timestamp)")
    con.execute("""insert into staging.stg_events values
        ('2026-11-20 15:59:59'),  -- 23:59:59 on the 20th in Shanghai
        ('2026-11-20 16:00:00'),  -- 00:00 on the 21st (the as-of day)
        ('2026-11-21 15:59:59'),  -- last second of the 21st
        ('2026-11-21 16:00:00'),  -- the 22nd: after the as-of date
        ('2026-11-17 15:59:59'),  -- the 17th: the day before a 3-day window
        ('2026-11-17 16:00:00')   -- the 18th: the window's first day""")
    counts = volume.daily_counts(con, "events", "2026-11-21", "Asia/Shanghai", 3)
    assert counts == {"by_day": {dt.date(2026, 11, 18): 1, dt.date(2026, 11, 20): 1,
                                 dt.date(2026, 11, 21): 2},
                      "newest": dt.date(2026, 11, 21)}
    later = volume.daily_counts(con, "events", "2026-12-31", "Asia/Shanghai", 3)
    assert later == {"by_day": {}, "newest": dt.date(2026, 11, 22)}
    empty = volume.daily_counts(con, "events", "2026-11-01", "Asia/Shanghai", 3)
    assert empty == {"by_day": {}, "newest": None}


def test_sparse_sources_are_not_judged():
    rows = volume.judge("privacy_requests", "2026-11-21",
                        {"by_day": {dt.date(2026, 11, 2): 3}, "newest": dt.date(2026, 11, 2)},
                        volume.VolumeRules())
    assert all(r.passed for r in rows) and "not judged" in rows[0].observed_value


def test_results_are_appended_per_run_and_summarised(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    row = results.ResultRow("staging", "staging.stg_orders", "amount_in_range", False, "block",
                            "2 unexpected", "ExpectColumnValuesToBeBetween", "amount", 2, "-5")
    ok = results.ResultRow("staging", "staging.stg_orders", "order_id_unique", True, "block")
    assert results.record(con, "run-1", "2026-11-21", [row, ok]) == 2
    results.record(con, "run-1", "2026-11-21", [row])  # a retried check replaces its row
    results.record(con, "run-2", "2026-11-22", [ok])
    assert con.execute(f"select count(*) from {results.TABLE}").fetchall() == [(3,)]
    summary = results.run_summary(con, "run-1")
    con.close()
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as ro:
        assert results.run_summary(ro, "run-1") == summary  # the CLI reads it read-only
    with duckdb.connect(str(tmp_path / "new.duckdb")) as fresh:
        assert results.run_summary(fresh, "run-1")["checks"] == 0
    assert summary["checks"] == 2 and summary["blocking_failed"] == 1
    assert summary["failures"][0][3] == "amount_in_range"


def test_dbt_test_results_become_rows():
    run_results = {"results": [
        {"unique_id": "test.ulm.unique_stg_orders_order_id.abc", "status": "fail",
         "failures": 3},
        {"unique_id": "test.ulm.not_null_x.def", "status": "pass", "failures": 0},
        {"unique_id": "model.ulm.stg_orders", "status": "success"},
    ]}
    manifest = {"nodes": {
        "test.ulm.unique_stg_orders_order_id.abc": {
            "name": "unique_stg_orders_order_id", "config": {"severity": "ERROR"},
            "depends_on": {"nodes": ["model.ulm.stg_orders"]}},
        "test.ulm.not_null_x.def": {"name": "not_null_x", "config": {"severity": "warn"},
                                    "depends_on": {"nodes": ["model.ulm.x"]}},
    }}
    rows = results.dbt_test_rows(run_results, manifest, "staging")
    assert [(r.table_name, r.check_name, r.passed, r.severity, r.failed_rows) for r in rows] == [
        ("stg_orders", "unique_stg_orders_order_id", False, "block", 3),
        ("x", "not_null_x", True, "warn", 0)]


@pytest.mark.parametrize("factory", [suites.staging_suites, suites.identity_suites,
                                     suites.mart_suites, suites.value_suites])
def test_every_suite_names_real_expectations(factory):
    import great_expectations.expectations as gxe

    for suite in factory(suites.SuiteParams()):
        for e in suite.expectations:
            assert hasattr(gxe, e.gx_type), (suite.name, e.gx_type)
            assert e.severity in (suites.BLOCK, suites.WARN)


def test_data_docs_compile_their_page_templates_once(tmp_path, monkeypatch):
    """GX gives every page a new Jinja environment; the views keep compiled templates, so a
    second check's pages compile no template file (they were 0.3 s of each check)."""
    from jinja2 import Environment

    suite = Suite("docs_cache", "marts.d", "marts", [suites.not_null("x")])
    frame = pd.DataFrame({"x": [1.0, None]})
    runner.validate(frame, suite, docs_dir=tmp_path)
    compiled = []
    compile_source = Environment.compile

    def counting(self, source, name=None, filename=None, *args, **kwargs):
        if filename:  # a template file, not a string rendered on the fly
            compiled.append(name)
        return compile_source(self, source, name, filename, *args, **kwargs)

    monkeypatch.setattr(Environment, "compile", counting)
    page = runner.validate(frame, suite, docs_dir=tmp_path).docs_page
    assert compiled == []
    assert "docs_cache" in Path(page).read_text()  # the page is still written


def test_gx_is_prepared_on_a_background_thread_once(tmp_path):
    """A run imports GX while dbt works; a suite that comes before the import is done waits
    for it instead of importing GX and creating a context a second time. In a fresh
    interpreter, where GX is not imported yet."""
    import subprocess
    import sys

    code = f"""
import sys
from expectations import runner
assert "great_expectations" not in sys.modules
thread = runner.prepare_in_background(__import__("pathlib").Path({str(tmp_path)!r}))
context = runner._context({str(tmp_path)!r})  # asked while the thread imports GX
thread.join()
assert "great_expectations" in sys.modules
assert runner._new_context.cache_info().misses == 1, runner._new_context.cache_info()
assert runner._context({str(tmp_path)!r}) is context
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
