import json
from datetime import UTC, datetime

import duckdb
import pytest

from orchestration.dbt_args import (
    build_threads,
    dbt_build_args,
    incremental_relations,
    resolve_as_of,
    summarize_failures,
)
from orchestration.tables import build_state


def test_as_of_given_is_normalised():
    assert resolve_as_of("2026-02-03", "UTC") == "2026-02-03"


def test_as_of_bad_date_is_a_clear_error():
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        resolve_as_of("03/02/2026", "UTC")


def test_default_as_of_is_yesterday_in_the_business_time_zone():
    # 20:00 UTC on 1 March is already 2 March in Shanghai: yesterday there is 1 March
    now = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
    assert resolve_as_of("", "Asia/Shanghai", now) == "2026-03-01"
    assert resolve_as_of(None, "UTC", now) == "2026-02-28"
    assert resolve_as_of("", "America/Los_Angeles", now) == "2026-02-28"


def test_build_args_pass_vars_as_json_and_skip_unit_tests():
    args = dbt_build_args({"as_of_date": "2026-01-01", "currency": "USD"})
    assert args[0] == "build"
    assert json.loads(args[args.index("--vars") + 1]) == {"as_of_date": "2026-01-01",
                                                          "currency": "USD"}
    assert args[args.index("--exclude-resource-type") + 1] == "unit_test"


def test_summarize_failures_names_models_and_tests():
    results = {"results": [
        {"unique_id": "model.ulm.stg_events", "status": "success"},
        {"unique_id": "model.ulm.int_events", "status": "error",
         "message": "Binder Error: column x not found\nmore"},
        {"unique_id": "test.ulm.accepted_values_source_reconciliation_is_reconciled.abc",
         "status": "fail", "failures": 2, "message": "Got 2 results, configured to fail if != 0"},
    ]}
    text = summarize_failures(results)
    assert "model int_events: Binder Error: column x not found" in text
    assert "accepted_values_source_reconciliation_is_reconciled" in text
    assert "2 failing rows" in text
    assert "stg_events" not in text


def test_every_incremental_model_of_the_project_is_listed():
    from orchestration.project import prepare_manifest

    relations = incremental_relations(json.loads(prepare_manifest().read_text()))
    # a few the daily chain cannot do without, with the schema dbt writes them to
    assert {("staging", "stg_events__all"), ("intermediate", "int_events"),
            ("intermediate", "int_person_day_stage"),
            ("marts", "user_lifecycle_history")} <= set(relations)
    # tables rebuilt every run are not among them
    assert ("marts", "dim_users") not in relations
    assert ("intermediate", "int_changed_people") not in relations


def test_a_build_on_an_earlier_one_takes_the_daily_threads(tmp_path):
    relations = [("staging", "stg_events__all"), ("intermediate", "int_events")]
    work = tmp_path / "work.duckdb"
    # a new warehouse: every model is built from every raw file
    assert build_state(work, relations, [])[0] == relations
    assert build_threads(1, 2, full_refresh=False,
                         missing_incremental=build_state(work, relations, [])[0]) == (
        1, "2 incremental models not built yet")
    with duckdb.connect(str(work)) as con:
        con.execute("create schema staging; create table staging.stg_events__all (x int)")
    # an earlier build stopped before int_events: that one is built whole
    assert build_state(work, relations, [])[0] == [("intermediate", "int_events")]
    with duckdb.connect(str(work)) as con:
        con.execute("create schema intermediate; create table intermediate.int_events (x int)")
    assert build_state(work, relations, [])[0] == []
    assert build_threads(1, 2, full_refresh=False, missing_incremental=[]) == (
        2, "its incremental models built before")
    assert build_threads(1, 2, full_refresh=True, missing_incremental=[]) == (
        1, "a full refresh")


def test_a_source_staged_again_whole_gives_the_models_the_first_build_threads(tmp_path):
    work = tmp_path / "work.duckdb"
    sources = ["events", "orders", "customers"]
    assert build_state(work, [], sources)[1] == []  # no database yet
    log = "staging.stg_{}__all__builds"
    with duckdb.connect(str(work)) as con:
        con.execute("create schema staging")
        for source in sources:
            con.execute(f"create table {log.format(source)} (_staging_run varchar, "
                        "built_at timestamptz, rows_left boolean, fingerprint varchar)")
        # events: a first build, then one with another PII key (every row staged again)
        con.execute(f"insert into {log.format('events')} values "
                    "('r1', '2026-01-01 01:00+00', true, 'key-a'), "
                    "('r2', '2026-01-02 01:00+00', true, 'key-b')")
        # orders: a first build and a daily one with the same fingerprint (inserted out of
        # order: the log is read by time)
        con.execute(f"insert into {log.format('orders')} values "
                    "('r2', '2026-01-02 01:00+00', false, 'key-a'), "
                    "('r1', '2026-01-01 01:00+00', true, 'key-a')")
        # customers: only a first build
        con.execute(f"insert into {log.format('customers')} values "
                    "('r1', '2026-01-01 01:00+00', true, 'key-a')")
    assert build_state(work, [], sources)[1] == ["events"]
    # the staging stage asks for no source: the log it would read is an earlier run's
    assert build_state(work, [("staging", "stg_events__all__builds")], []) == ([], [])
    assert build_threads(1, 2, full_refresh=False, missing_incremental=[],
                         staged_again=["events"]) == (1, "every row of events staged again")
    # the next day's build has the new fingerprint too: a daily build again
    with duckdb.connect(str(work)) as con:
        con.execute(f"insert into {log.format('events')} values "
                    "('r3', '2026-01-03 01:00+00', false, 'key-b')")
    assert build_state(work, [], sources)[1] == []
    # a build before it logged by an older version (no fingerprint) cannot tell
    with duckdb.connect(str(work)) as con:
        con.execute(f"insert into {log.format('customers')} values "
                    "('r0', '2025-12-31 01:00+00', true, null), "
                    "('r2', '2026-01-02 01:00+00', true, null)")
    assert build_state(work, [], sources)[1] == []
    # a log without the column at all (an older version's) counts as not staged again
    with duckdb.connect(str(work)) as con:
        con.execute(f"alter table {log.format('orders')} drop column fingerprint")
    assert build_state(work, [], sources)[1] == []
