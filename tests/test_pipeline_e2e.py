"""End-to-end: generated and hand-made raw data through `ulm run` (Dagster, dbt, publish)."""

import hashlib
import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from conftest import run_dbt

from orchestration.benchmark import connected_components_rounds, rank_redeliveries
from orchestration.cli import main
from orchestration.config import dbt_vars, load_config
from orchestration.dbt_args import dbt_unit_test_args
from orchestration.truth import churn_quality, identity_quality

pytestmark = pytest.mark.e2e

CONTRACT_TABLES = {
    "dim_users", "source_reconciliation", "quarantine_summary", "user_lifecycle_history",
    "lifecycle_daily", "cohort_retention", "kpi_daily", "rfm_segments", "churn_reasons",
    "user_churn_scores", "churn_model_metrics", "user_clv", "clv_model_params",
    "winback_targets", "campaign_effect",
}


def q(db: Path, sql: str):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def table_digest(db: Path, table: str, order_by: str) -> str:
    rows = q(db, f"select * exclude (as_of_date) from marts.{table} order by {order_by}")
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def test_generated_world_runs_and_reconciles(small_world):
    assert small_world.exit_code == 0
    serving = small_world.warehouse / "serving.duckdb"
    tables = {r[0] for r in q(serving, "select table_name from duckdb_tables() "
                                       "where schema_name = 'marts'")}
    assert tables >= CONTRACT_TABLES
    recon = q(serving, "select source, raw_rows, staged_rows + duplicate_rows + quarantined_rows,"
                       " duplicate_rows, quarantined_rows from marts.source_reconciliation")
    assert len(recon) == 5
    for source, raw, parts, _, _ in recon:
        assert raw == parts, source
    events = {r[0]: r for r in recon}["events"]
    assert events[3] > 0 and events[4] > 0  # redeliveries and malformed rows were found
    for source, raw, _, duplicates, quarantined in recon:
        # the generator injects defects at well under 1%: much more means a parsing bug
        assert duplicates + quarantined <= 0.02 * raw, source


def test_staging_suites_validate_their_newest_staging_build(small_world):
    from orchestration.quality_checks import newest_staging_runs

    with duckdb.connect(str(small_world.warehouse / "work.duckdb"), read_only=True) as con:
        runs = newest_staging_runs(con)
        assert set(runs) == {"events", "orders", "customers", "campaign_touches"}
        # the first build staged every row, so its suites validated every row
        for source in runs:
            newest, every = con.execute(
                f"select count(*) filter (where _staging_run = ?), count(*) "
                f"from staging.stg_{source}", [runs[source]]).fetchone()
            assert newest == every > 0, source


def test_quarantine_matches_the_injected_defects(small_world):
    raw = small_world.raw
    with duckdb.connect() as con:
        # Parquet events carry typed timestamps (a broken clock writes null); JSON Lines
        # events carry strings (a broken one writes 'not-a-date')
        missing = con.execute(
            f"select count(*) from read_parquet('{raw}/events/**/*.parquet', union_by_name=true)"
            " where occurred_at is null").fetchall()[0][0]
        invalid = con.execute(
            f"select count(*) from read_json('{raw}/events/**/*.jsonl', union_by_name=true, "
            "format='newline_delimited') where occurred_at = 'not-a-date'").fetchall()[0][0]
    got = dict(q(small_world.warehouse / "work.duckdb",
                 "select reason, count(*) from intermediate.int_quarantine_rows "
                 "where source = 'events' and file not like '%/defects/%' group by reason"))
    assert missing > 0 and invalid > 0
    assert got["missing_occurred_at"] == missing
    assert got["invalid_occurred_at"] == invalid
    example = q(small_world.warehouse / "serving.duckdb",
                "select example_file from marts.quarantine_summary where source = 'events' "
                "and reason = 'invalid_occurred_at'")[0][0]
    assert example.startswith(str(raw)) and example.endswith((".jsonl", ".csv"))


def test_identities_match_the_generator_truth(small_world):
    quality = identity_quality(small_world.warehouse / "work.duckdb", small_world.truth)
    assert quality.identifiers > 3_000
    assert quality.pairwise_precision >= 0.999
    assert quality.pairwise_recall >= 0.97


def test_benchmark_floor_finds_the_identity_components_dbt_found(small_world, tmp_path):
    """The SQL floor repeats the connected_components macro's label propagation in Python
    (dbt compile does not run it): on the same graph it must give dbt's labels."""
    work = tmp_path / "work.duckdb"
    shutil.copyfile(small_world.warehouse / "work.duckdb", work)
    with duckdb.connect(str(work)) as con:
        labels = "select node_id, label from identity_work.cc_labels order by node_id"
        built = con.execute(labels).fetchall()
        connected_components_rounds(con, "select node_id from intermediate.int_identity_nodes",
                                    "select src, dst from intermediate.int_identity_edges")
        assert con.execute(labels).fetchall() == built
    assert len({label for _, label in built}) < len(built)  # some identifiers were linked


def test_benchmark_floor_ranks_redeliveries_as_dbt_did(small_world, tmp_path):
    """The SQL floor repeats stg_events__all's ranking hook (dbt compile does not render
    hooks): from rank 1 everywhere, as the model's select writes it, it must give dbt's
    ranks."""
    work = tmp_path / "work.duckdb"
    shutil.copyfile(small_world.warehouse / "work.duckdb", work)
    with duckdb.connect(str(work)) as con:
        ranks = ("select event_id, _file, _row, delivery_rank from staging.stg_events__all "
                 "order by all")
        built = con.execute(ranks).fetchall()
        con.execute("update staging.stg_events__all set delivery_rank = 1 "
                    "where reject_reason is null")
        rank_redeliveries(con, "staging.stg_events__all", "event_id", "delivery_rank",
                          "_file, _row, occurred_at")
        assert con.execute(ranks).fetchall() == built
    assert sum(1 for *_, rank in built if rank and rank > 1) > 10  # some were redelivered


def test_no_personal_data_reaches_the_serving_database(small_world):
    serving = small_world.warehouse / "serving.duckdb"
    with duckdb.connect(str(serving), read_only=True) as con:
        con.execute(
            "create temp table pii as select distinct identifier as v from read_parquet("
            f"'{small_world.truth}/identities-*.parquet') where identifier_type in "
            "('email', 'phone') union select regexp_replace(identifier, '[^0-9]', '', 'g') "
            f"from read_parquet('{small_world.truth}/identities-*.parquet') "
            "where identifier_type = 'phone'")
        assert con.execute("select count(*) from pii").fetchall()[0][0] > 1_000
        columns = con.execute("select table_name, column_name from duckdb_columns() "
                              "where schema_name = 'marts' and data_type = 'VARCHAR'").fetchall()
        assert columns
        for table, column in columns:
            leaks = con.execute(
                f'select count(*) from marts."{table}" t where t."{column}" like \'%@%\' '
                f'or t."{column}" in (select v from pii)').fetchall()
            assert leaks == [(0,)], (table, column)


def test_lifecycle_churn_matches_the_generator_truth(small_world):
    quality = churn_quality(small_world.warehouse / "work.duckdb", small_world.truth,
                            small_world.as_of, churned_after_days=60)
    assert quality.detectable_churners > 200
    assert quality.recall >= 0.85
    assert quality.precision >= 0.95
    # a churn is seen once the inactivity threshold has passed: never before the true date
    assert 0 < quality.median_lag_days <= 60


def test_lifecycle_marts_add_up(small_world):
    serving = small_world.warehouse / "serving.duckdb"
    # every day, the stages hold exactly the people first seen by then
    mismatches = q(serving, """
        with seen as (
            select d.date, count(u.user_key) as people
            from (select distinct date from marts.lifecycle_daily) d
            left join (select user_key, min(valid_from) as first_day
                       from marts.user_lifecycle_history group by user_key) u
              on u.first_day <= d.date
            group by d.date)
        select count(*) from seen
        join (select date, sum(users) as users from marts.lifecycle_daily group by date) s
          using (date)
        where seen.people <> s.users""")
    assert mismatches == [(0,)]
    # intervals tile each person's days: contiguous, one current interval per person
    gaps = q(serving, """
        select count(*) from (
            select valid_to, lead(valid_from) over (partition by user_key order by valid_from) nxt
            from marts.user_lifecycle_history)
        where nxt is not null and nxt <> valid_to""")
    assert gaps == [(0,)]
    current = q(serving, "select count(*), count(distinct user_key) from "
                         "marts.user_lifecycle_history where valid_to is null")
    people = q(serving, "select count(*) from marts.dim_users")[0][0]
    assert current == [(people, people)]
    # revenue in kpi_daily equals completed orders
    work = small_world.warehouse / "work.duckdb"
    orders = q(work, "select sum(amount) from intermediate.int_orders where status = 'completed'")
    revenue = q(serving, "select sum(revenue) from marts.kpi_daily")
    assert revenue == orders
    # DAU / WAU / MAU from the running clocks agree with a direct count over activity
    usage_mismatches = q(work, """
        with a as (select user_key, activity_date
                   from intermediate.int_person_day_activity where is_active),
        cal as (select distinct date as day from marts.kpi_daily),
        direct as (
            select cal.day,
                   count(distinct a.user_key) filter (where a.activity_date = cal.day) as dau,
                   count(distinct a.user_key) filter (where a.activity_date > cal.day - 7)
                       as wau,
                   count(distinct a.user_key) as mau
            from cal join a on a.activity_date > cal.day - 30 and a.activity_date <= cal.day
            group by cal.day)
        select count(*) from marts.kpi_daily k left join direct d on d.day = k.date
        where k.dau <> coalesce(d.dau, 0) or k.wau <> coalesce(d.wau, 0)
           or k.mau <> coalesce(d.mau, 0)""")
    assert usage_mismatches == [(0,)]
    # retention is only reported for periods the whole cohort has reached
    late = q(serving, f"""
        select count(*) from marts.cohort_retention
        where cohort_period = 'week'
          and cohort_start + cast(7 * period_number + 6 as integer) > date '{small_world.as_of}'""")
    assert late == [(0,)]


def test_dbt_unit_tests_pass(small_world, tmp_path):
    v = dbt_vars(load_config(None), small_world.as_of, small_world.warehouse)
    out = run_dbt(dbt_unit_test_args(v), tmp_path / "dbt_target")
    assert "PASS=" in out and "ERROR=0" in out


def test_key_tests_fail_with_the_keys_a_group_by_finds_repeated(small_world, tmp_path):
    """dbt's `unique` and the project's `unique_combination` tests (on DuckDB: grouped by
    64-bit hashes first) fail with exactly the keys that a plain group-by finds more than
    once: null keys count for `unique_combination`, as in a group by, and not for `unique`."""
    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    shutil.copyfile(small_world.warehouse / "work.duckdb", warehouse / "work.duckdb")
    events, days = "intermediate.int_events", "intermediate.int_person_day_stage"
    with duckdb.connect(str(warehouse / "work.duckdb")) as con:
        # one event id twice, and two events without one
        con.execute(f"insert into {events} select * from {events} limit 1")
        con.execute(f"insert into {events} select * replace (null as event_id) from {events} "
                    "limit 2")
        # one person's day twice, and one day twice without a person
        con.execute(f"insert into {days} select * from {days} limit 1")
        con.execute(f"insert into {days} select * replace (null as user_key) from {days} "
                    f"where day = (select min(day) from {days}) limit 2")
        expected = {
            "unique_int_events_event_id": con.execute(
                f"select count(*) from (select event_id from {events} where event_id is not "
                "null group by event_id having count(*) > 1)").fetchall()[0][0],
            "unique_combination_int_person_day_stage_user_key__day": con.execute(
                f"select count(*) from (select user_key, day from {days} group by user_key, "
                "day having count(*) > 1)").fetchall()[0][0],
            "unique_int_identity_nodes_node_id": 0,
        }
    assert list(expected.values()) == [1, 2, 0]
    v = dbt_vars(load_config(None), small_world.as_of, warehouse)
    target = tmp_path / "dbt_target"
    run_dbt(["test", "--select", *expected, "--vars", json.dumps(v)], target, check=False)
    results = json.loads((target / "run_results.json").read_text())["results"]
    failures = {r["unique_id"].split(".")[2]: r["failures"] for r in results}
    assert failures == expected


def test_backfill_rerun_is_idempotent_and_a_corrupt_file_blocks_without_touching_serving(
        small_world, tmp_path, capsys):
    raw, warehouse = tmp_path / "raw", tmp_path / "warehouse"
    shutil.copytree(small_world.raw, raw)
    shutil.copytree(small_world.warehouse, warehouse)
    serving = warehouse / "serving.duckdb"
    # a backfill of the day before and the same as-of again: one partition run per date,
    # oldest first. The day before gets its own churn model (the current one saw later
    # data), which then scores the as-of date too: serving differs from the first run's.
    day_before = (pd.Timestamp(small_world.as_of) - pd.Timedelta(days=1)).date().isoformat()
    assert main(["backfill", "--raw-dir", str(raw), "--warehouse", str(warehouse),
                 "--start", day_before, "--end", small_world.as_of]) == 0
    assert q(serving, "select distinct as_of_date from marts.dim_users")[0][0].isoformat() \
        == small_world.as_of
    assert q(serving, "select distinct model_version from marts.user_churn_scores")[0][0] \
        .startswith(day_before.replace("-", ""))
    # the day before fitted CLV on its own data (the stored fit saw later days); the as-of
    # date a day later scored with those parameters, and says so
    assert q(serving, "select distinct as_of_date::varchar, fitted_on::varchar "
                      "from marts.clv_model_params") == [(small_world.as_of, day_before)]
    instance = dg.DagsterInstance.from_config(str(warehouse / "dagster_home"))
    partitions = [r.tags.get("dagster/partition") for r in instance.get_runs(limit=2)]
    assert partitions == [small_world.as_of, day_before]  # newest first

    # the same as-of again gives the same serving data (staging incremental: nothing new)
    after_backfill = table_digest(serving, "dim_users", "user_key")
    args = ["run", "--raw-dir", str(raw), "--warehouse", str(warehouse),
            "--as-of", small_world.as_of]
    capsys.readouterr()
    assert main(args) == 0
    # every dbt build of the run finds the earlier build's incremental models
    log = capsys.readouterr().err
    assert log.count(f"dbt build as of {small_world.as_of} (its incremental models built before): "
                     f"{load_config(None).engine.daily_dbt_threads} models at a time") == 3, log
    assert table_digest(serving, "dim_users", "user_key") == after_backfill

    published = serving.read_bytes()
    bad = raw / "events" / "month=2026-11" / "late-delivery.parquet"
    bad.write_bytes(b"PAR1\x00\x01 truncated upload")
    capsys.readouterr()
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "late-delivery.parquet" in out
    assert "serving.duckdb was not changed" in out
    assert serving.read_bytes() == published
    assert q(serving, "select count(*) from marts.dim_users")[0][0] > 0


# --------------------------------------------------------------------------------------
# hand-made identity cases with known answers


def write_csv(path: Path, header: str, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")


EVENT_HEADER = "event_id,event_type,occurred_at,user_id,anonymous_id,email,phone,properties"


@pytest.fixture
def identity_raw(tmp_path) -> Path:
    raw = tmp_path / "raw"
    write_csv(raw / "events" / "day1.csv", EVENT_HEADER, [
        # anonymous browsing, then signup on the same device
        "e1,page_view,2026-03-01T09:00:00Z,,a1,,,",
        "e2,signup,2026-03-01T09:05:00Z,u1,a1,,,",
        # a second device, anonymous until a login links it
        "e3,page_view,2026-03-02T10:00:00Z,,a2,,,",
        "e4,login,2026-03-02T10:01:00Z,u1,a2,,,",
        # a newsletter click known only by email (messy case): linked through the CRM
        'e5,page_view,2026-03-03T08:00:00Z,,,"  Anna@Example.COM ",,',
        # a family tablet used by two accounts: shared, links nobody
        "e6,login,2026-03-04T20:00:00Z,u1,t1,,,",
        "e7,login,2026-03-04T21:00:00Z,u2,t1,,,",
        "e8,page_view,2026-03-04T21:05:00Z,,t1,,,",
        # a prospect: one device, never signs up
        "e9,page_view,2026-03-05T12:00:00+08:00,,a9,,,",
        # unicode in properties
        'e10,feature_use,2026-03-05T13:00:00Z,u2,,,,"{""feature"": ""搜索""}"',
    ])
    write_csv(raw / "orders" / "pos" / "store.csv",
              "order_id,ordered_at,amount,phone,store_id", [
                  # a store order known only by phone, written differently from the CRM
                  "s1,2026-03-06 15:00:00,25.00,+86 138 1234 5678,S1",
                  # a phone too short to be one: the row has no identifier
                  "s2,2026-03-06 16:00:00,5.00,12,S1",
              ])
    write_csv(raw / "customers" / "crm.csv",
              "user_id,updated_at,email,phone,name,city,marketing_consent", [
                  "u1,2026-03-01T09:05:00Z,ANNA@example.com,008613812345678,王芳,上海,yes",
                  "u2,2026-03-04T21:00:00Z,bob@example.com,,Zoë O'Brien,München,no",
              ])
    return raw


def key_of(work: Path, node: str) -> str:
    rows = q(work, f"select user_key from intermediate.int_identity_map where node_id = '{node}'")
    assert len(rows) == 1, node
    return rows[0][0]


def test_identity_cases_with_known_answers(identity_raw, tmp_path):
    warehouse = tmp_path / "warehouse"
    args = ["run", "--raw-dir", str(identity_raw), "--warehouse", str(warehouse),
            "--as-of", "2026-03-10"]
    assert main(args) == 0
    work = warehouse / "work.duckdb"
    anna = key_of(work, "u:u1")
    assert key_of(work, "a:a1") == anna  # signup on the browsing device
    assert key_of(work, "a:a2") == anna  # second device via login
    bob = key_of(work, "u:u2")
    tablet = key_of(work, "a:t1")
    assert len({anna, bob, tablet}) == 3  # the shared tablet merges nobody
    prospect = key_of(work, "a:a9")
    assert prospect not in {anna, bob, tablet}
    # the email-only event and the phone-only store order belong to Anna
    events = dict(q(work, "select event_id, user_key from intermediate.int_events"))
    assert events["e5"] == anna and events["e8"] == tablet and events["e10"] == bob
    orders = dict(q(work, "select order_id, user_key from intermediate.int_orders"))
    assert orders == {"s1": anna}
    serving = warehouse / "serving.duckdb"
    assert q(serving, "select count(*) from marts.dim_users") == [(4,)]
    assert q(serving, "select rows from marts.quarantine_summary where source = 'orders' "
                      "and reason = 'missing_identifier'") == [(1,)]
    consent = dict(q(serving, "select user_id, marketing_consent from marts.dim_users "
                              "where user_id is not null"))
    assert consent == {"u1": True, "u2": False}

    # as data grows, a person keeps their key: a new device for Anna arrives later; and Bob
    # asks to be erased: the next run removes him from every mart
    write_csv(identity_raw / "events" / "day9.csv", EVENT_HEADER, [
        "e20,login,2026-03-09T09:00:00Z,u1,a3,,,",
        "e21,page_view,2026-03-09T09:01:00Z,,a3,,,",
    ])
    write_csv(identity_raw / "privacy_requests" / "r.csv",
              "request_id,request_type,requested_at,email", [
                  "r1,delete,2026-03-08T00:00:00Z,bob@example.com",
              ])
    assert main(args) == 0
    assert key_of(work, "u:u1") == anna and key_of(work, "a:a3") == anna
    assert q(serving, "select count(*) from marts.dim_users where user_id = 'u2'") == [(0,)]
    assert q(serving, "select count(*) from marts.dim_users") == [(3,)]
    for table in ("dim_users", "user_lifecycle_history", "rfm_segments", "user_clv",
                  "user_tags"):
        rows = q(serving, f"select * from marts.{table}")
        assert bob not in json.dumps(rows, default=str), table
    assert json.dumps(q(serving, "select * from marts.dim_users"), default=str).count("u2") == 0


def test_lifecycle_edges_in_the_business_time_zone(tmp_path):
    """Only orders, only events, a signup and nothing after, and an event that crosses
    midnight in the business time zone (20:00 UTC is 04:00 next day in Shanghai)."""
    raw = tmp_path / "raw"
    write_csv(raw / "events" / "e.csv", EVENT_HEADER, [
        "e1,page_view,2026-03-01T20:00:00Z,,a1,,,",
        "e2,signup,2026-03-01T20:05:00Z,u1,a1,,,",
        "e3,signup,2026-01-02T09:00:00+08:00,u2,,,,",
    ])
    write_csv(raw / "orders" / "o.csv", "order_id,ordered_at,amount,phone,status", [
        "o1,2026-02-10T10:00:00+08:00,30.00,+86 139 0000 1111,completed",
        "o2,2026-03-05T10:00:00+08:00,20.00,+86 139 0000 1111,refunded",
    ])
    # a shop's till export: header in any case, people known only by email
    write_csv(raw / "orders" / "till.csv", "ORDER_ID,Ordered_At,AMOUNT,Email", [
        "t1,2026-03-01 10:00:00,12.50,shopper@example.com",
        "t2,2026-03-08 10:00:00,7.50,SHOPPER@example.com",
    ])
    config = tmp_path / "ulm.yaml"
    config.write_text("business_timezone: Asia/Shanghai\ntimezone: Asia/Shanghai\n"
                      "lifecycle:\n  churned_after_days: 30\n")
    warehouse = tmp_path / "warehouse"
    assert main(["run", "--raw-dir", str(raw), "--warehouse", str(warehouse),
                 "--as-of", "2026-03-10", "--config", str(config)]) == 0
    work, serving = warehouse / "work.duckdb", warehouse / "serving.duckdb"
    assert dict(q(work, "select event_id, event_date::varchar from intermediate.int_events")) \
        == {"e1": "2026-03-02", "e2": "2026-03-02", "e3": "2026-01-02"}
    users = {r[0]: r[1:] for r in q(serving, """
        select coalesce(user_id, case when revenue = 20 then 'shopper' else 'store' end),
               signup_date::varchar, lifecycle_stage
        from marts.dim_users""")}
    assert len(users) == 4
    assert users["u1"] == ("2026-03-02", "new")  # signed up 8 days ago, not activated
    assert users["u2"] == ("2026-01-02", "churned")  # a signup and nothing after
    # orders only: a customer from the first order, which also activates; the refunded order
    # on 03-05 is still activity, so 28 days on they are in their activated period
    assert users["store"] == ("2026-02-10", "activated")
    # two orders under the same email written in two cases: one person, a customer from
    # the first order
    assert users["shopper"] == ("2026-03-01", "activated")
    stages = q(serving, """
        select h.lifecycle_stage from marts.user_lifecycle_history h
        join marts.dim_users d using (user_key) where d.user_id = 'u1' order by valid_from""")
    assert stages == [("new",)]  # anonymous and signup the same business day
    kpi = dict(q(serving, "select date::varchar, revenue from marts.kpi_daily "
                          "where revenue > 0"))
    assert kpi == {"2026-02-10": 30, "2026-03-01": 12.5, "2026-03-08": 7.5}


def test_empty_landing_zone(tmp_path):
    raw, warehouse = tmp_path / "raw", tmp_path / "warehouse"
    (raw / "events").mkdir(parents=True)  # present but empty; other sources absent
    args = ["run", "--raw-dir", str(raw), "--warehouse", str(warehouse), "--as-of", "2026-03-10"]
    assert main(args) == 0
    serving = warehouse / "serving.duckdb"
    assert q(serving, "select count(*) from marts.dim_users") == [(0,)]
    assert q(serving, "select sum(raw_rows) from marts.source_reconciliation") == [(0,)]
    for table in ("user_clv", "winback_targets", "campaign_effect", "user_churn_scores"):
        assert q(serving, f"select count(*) from marts.{table}") == [(0,)], table


# --------------------------------------------------------------------------------------
# churn prediction


def test_churn_features_cannot_see_past_their_snapshot(small_world, tmp_path):
    """Features of a past snapshot, computed in today's run, equal the features computed by
    a run whose as-of date is that snapshot (which has no data after it at all)."""
    snapshot = str(q(small_world.warehouse / "work.duckdb", """
        select max(snapshot_date) from intermediate.int_churn_features
        where label is not null""")[0][0])  # the newest labelled snapshot
    warehouse = tmp_path / "warehouse"
    assert main(["run", "--raw-dir", str(small_world.raw), "--warehouse", str(warehouse),
                 "--as-of", snapshot]) == 0
    columns = "* exclude (label, is_scoring_snapshot)"
    query = (f"select {columns} from intermediate.int_churn_features "
             f"where snapshot_date = date '{snapshot}'")
    with duckdb.connect(str(small_world.warehouse / "work.duckdb"), read_only=True) as con:
        later = con.execute(query).df().set_index("user_key")
    with duckdb.connect(str(warehouse / "work.duckdb"), read_only=True) as con:
        then = con.execute(query).df().set_index("user_key")
    common = later.index.intersection(then.index)
    assert len(common) > 0.95 * len(then) and len(common) > 300
    a = later.loc[common].sort_index()
    b = then.loc[common, a.columns].sort_index()
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def test_churn_snapshots_lie_on_a_fixed_calendar(small_world):
    """The as-of date, and calendar dates every 14 days (from 1970-01-01) back to 12 with a
    known label (30 days after them; the small world's 150 days hold fewer): a past snapshot
    keeps its date as the as-of date moves, so a daily run can keep its rows."""
    rows = q(small_world.warehouse / "work.duckdb", """
        select snapshot_date, bool_or(is_scoring_snapshot), bool_or(label is not null)
        from intermediate.int_churn_features group by snapshot_date order by snapshot_date""")
    as_of = date.fromisoformat(small_world.as_of)
    assert rows[-1][:2] == (as_of, True)
    past = [d for d, _, _ in rows[:-1]]
    assert all((d - date(1970, 1, 1)).days % 14 == 0 for d in past)
    assert all(b - a == timedelta(days=14) for a, b in zip(past, past[1:], strict=False))
    labelled = [d for d, _, has_label in rows if has_label]
    assert labelled == [d for d in past if d + timedelta(days=30) <= as_of]
    assert 6 <= len(labelled) <= 12
    assert labelled[-1] + timedelta(days=30) <= as_of < labelled[-1] + timedelta(days=44)


def test_churn_model_is_registered_scores_everyone_and_beats_baselines(small_world):
    serving = small_world.warehouse / "serving.duckdb"
    metrics = {(m, met): v for m, met, v in q(serving, """
        select model, metric, value from marts.churn_model_metrics where split = 'test'""")}
    assert metrics[("xgboost", "roc_auc")] > metrics[("recency_baseline", "roc_auc")] + 0.02
    assert metrics[("xgboost", "pr_auc")] > metrics[("recency_baseline", "pr_auc")]
    assert metrics[("xgboost", "roc_auc")] >= metrics[("logistic_baseline", "roc_auc")] - 0.01
    assert metrics[("xgboost", "calibration_error")] < 0.1
    # every customer (not churned, not a prospect) is scored, in [0, 1], with reasons
    scored = q(serving, """
        select count(*) filter (where lifecycle_stage not in ('churned', 'prospect')),
               count(churn_probability),
               count(*) filter (where churn_probability between 0 and 1),
               count(*) filter (where churn_risk_tier = 'high' and churn_top_reasons <> '')
        from marts.dim_users""")[0]
    assert scored[0] == scored[1] == scored[2] > 0 and scored[3] > 0
    registry_file = small_world.warehouse / "models" / "churn" / "registry.json"
    current = json.loads(registry_file.read_text())["current"]
    card = json.loads((registry_file.parent / current / "model_card.json").read_text())
    assert card["version"] == current
    assert {"features", "training_window", "params", "metrics", "libraries",
            "data_fingerprint"} <= set(card)
    assert q(serving, "select distinct model_version from marts.user_churn_scores") == [
        (current,)]


def test_clv_covers_everyone_and_is_published_with_its_parameters(small_world):
    serving = small_world.warehouse / "serving.duckdb"
    people, clv_rows, buyers, valid, no_purchase_ok = q(serving, """
        select (select count(*) from marts.dim_users), count(*),
               count(*) filter (where value_tier in ('high', 'medium', 'low')),
               count(*) filter (where p_alive between 0 and 1 and clv >= 0
                                and expected_purchases >= 0 and expected_avg_order_value > 0),
               bool_and(clv = 0 and p_alive is null) filter (where value_tier = 'no_purchase')
        from marts.user_clv""")[0]
    assert people == clv_rows and buyers == valid > 0 and no_purchase_ok
    # one-order people get the population answer, not a blank
    assert q(serving, """select count(*) from marts.user_clv
                         where frequency = 0 and (clv is null or clv <= 0)""") == [(0,)]
    # dim_users carries the same value columns
    assert q(serving, """select count(*) from marts.dim_users d join marts.user_clv c
                         using (user_key) where d.clv is distinct from c.clv
                         or d.value_tier is distinct from c.value_tier""") == [(0,)]
    params = dict(((m, p), v) for m, p, v in q(
        serving, "select model, param, value from marts.clv_model_params"))
    assert set(params) == {("bg_nbd", k) for k in ("r", "alpha", "a", "b")} | {
        ("gamma_gamma", k) for k in ("p", "q", "gamma")}
    assert all(v > 0 for v in params.values())
    holdout = q(serving, "select sum(customers), sum(predicted * customers), "
                         "sum(actual * customers) from marts.clv_holdout_check")[0]
    assert holdout[0] > 0 and abs(holdout[1] - holdout[2]) / holdout[2] < 0.25


def test_the_engine_summarises_purchases_as_ml_clv_does(small_world):
    from ml import clv
    from orchestration.resources import UlmSettings
    from orchestration.value_assets import _purchase_summary

    work = small_world.warehouse / "work.duckdb"
    days = pd.DataFrame(q(work, "select user_key, purchase_date, amount::double "
                                "from intermediate.int_purchase_days"),
                        columns=["user_key", "purchase_date", "amount"])
    expected = clv.purchase_summary(days, small_world.as_of, "day")
    got = _purchase_summary(UlmSettings(raw_dir=str(small_world.raw), pii_key="unused",
                                        warehouse_dir=str(small_world.warehouse)))
    assert len(got) > 100 and (got["frequency"] > 0).sum() > 20
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-12)


def test_campaign_effect_recovers_the_true_uplift(small_world):
    truth = json.loads((small_world.truth / "campaigns.json").read_text())
    serving = small_world.warehouse / "serving.duckdb"
    rows = q(serving, """
        select campaign_id, treated_users, control_users, uplift, uplift_ci_low, uplift_ci_high
        from marts.campaign_effect where effect_status = 'measured'""")
    assert len(rows) >= 3
    for cid, treated, control, uplift, low, high in rows:
        # every touched person is counted once, in the group the generator put them in
        # (less anyone erased by a delete request)
        assert treated <= truth["campaigns"][cid]["treatment_users"]
        assert control <= truth["campaigns"][cid]["control_users"]
        assert low <= uplift <= high
    covered = [low <= truth["true_uplift"] <= high for *_, low, high in rows]
    assert sum(covered) >= 0.75 * len(covered), rows
    # pooled over campaigns (inverse-variance), the truth is inside the 95% interval
    est = pd.DataFrame(rows, columns=["id", "t", "c", "u", "lo", "hi"])
    w = 1 / ((est["hi"] - est["lo"]) / (2 * 1.959964)) ** 2
    pooled, se = (w * est["u"]).sum() / w.sum(), (1 / w.sum()) ** 0.5
    assert pooled - 1.96 * se <= truth["true_uplift"] <= pooled + 1.96 * se


def test_winback_targets_are_reachable_ranked_and_within_budget(small_world):
    serving = small_world.warehouse / "serving.duckdb"
    cfg = load_config(None)
    targets = q(serving, "select count(*), max(cumulative_cost), min(expected_value), "
                         "count(distinct priority_rank), max(priority_rank) "
                         "from marts.winback_targets")[0]
    assert targets[0] > 0 and targets[1] <= cfg.winback.budget and targets[2] > 0
    assert targets[3] == targets[4] == targets[0]
    # nobody without consent (false, unknown or withdrawn), and only churned or high risk
    assert q(serving, """
        select count(*) from marts.winback_targets t join marts.dim_users d using (user_key)
        where not coalesce(d.marketing_consent, false) or d.consent_withdrawn
           or not (d.lifecycle_stage = 'churned' or d.churn_risk_tier = 'high')""") == [(0,)]
    offers = dict(q(serving, "select reason, any_value(recommended_offer) "
                             "from marts.winback_targets group by reason"))
    if "price" in offers:
        assert offers["price"] == cfg.winback.offers["price"].offer


def test_each_dbt_stage_logs_where_its_time_went(small_world):
    """Each dbt step logs its build's time, the DuckDB statements' share of it as dbt timed
    them, and the close; the benchmark reads it back to set dbt's own work apart from the
    same statements' time within the run."""
    from orchestration.benchmark import DBT_STAGE_OPS, _build_timings
    from orchestration.cli import _dagster_home

    instance = dg.DagsterInstance.from_config(str(_dagster_home(small_world.warehouse)))
    first_run = instance.get_runs()[-1]  # newest first: the fixture's own run is the last
    timings = _build_timings(instance, first_run.run_id)
    assert set(timings) == set(DBT_STAGE_OPS)
    threads = load_config(None).engine.dbt_threads
    for stage, timing in timings.items():
        # a node runs several statements (its own, BEGIN and COMMIT around a model's)
        assert timing.nodes > 0 and timing.statements > 2 * timing.nodes, stage
        # statements of dbt's threads may overlap in time, never more than the threads allow
        assert 0 < timing.sql_seconds < threads * timing.build_seconds, stage
        assert timing.close_seconds >= 0, stage
    assert timings["ulm_dbt_models"].nodes > timings["ulm_dbt_after_ml"].nodes
    # a new warehouse: staging and the model build build their incremental models from
    # every file, at engine.dbt_threads; by the last stage every one of them exists
    said = {entry.step_key: entry.user_message for entry in instance.all_logs(first_run.run_id)
            if entry.user_message.startswith("dbt build as of ")}
    cfg = load_config(None)
    assert said["ulm_dbt_staging"].endswith(
        f"incremental models not built yet): {cfg.engine.dbt_threads} models at a time")
    assert "incremental models not built yet" in said["ulm_dbt_models"]
    assert said["ulm_dbt_after_ml"].endswith(
        f"(its incremental models built before): {cfg.engine.daily_dbt_threads} models at a time")
