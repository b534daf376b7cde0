"""Incremental builds give the same data as a full refresh.

One raw dir lives through a day of deliveries: the first build sees all but the last month
and describes the day before it; then the last month arrives, a Parquet and a JSON Lines
events file, a CRM file and a campaign touches file are redelivered under names that sort
first (so earlier rows lose their first-delivery rank), one orders file is rewritten with
fewer rows, one events file is withdrawn, and so is an early copy of another (whose
original's rows become first deliveries again), and the second build describes the last day
(the as-of date moves on, as on a daily run; the person-level models rebuild only the people
whose data changed, and everyone else's lifecycle gains the month's days, as does the
lifecycle of those whose data changed only in that month). The incremental
build on top of the first must equal a full build of the final raw dir, table by table, in
every dbt layer below the ML-joined dim_users (which is built from these, by the same
SQL)."""

from __future__ import annotations

import re
import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
from incremental_support import (
    HELD_SOURCES,
    add_identity_link,
    assert_snapshots_current,
    build,
    count,
    differences,
    hold_last_events_file,
    query,
)

from orchestration.generator import GeneratorSettings, generate


def test_incremental_staging_equals_a_full_refresh(tmp_path):
    settings = GeneratorSettings(users=300, days=60, seed=3, chunk_users=150)
    generate(tmp_path / "gen", settings)
    raw, held = tmp_path / "gen" / "raw", tmp_path / "held"
    last_month = "month=" + settings.end_date[:7]
    for source in HELD_SOURCES:
        shutil.move(raw / source / last_month, held / source / last_month)

    # an early copy of a file: staged first (its name sorts first), so the original's rows
    # are second deliveries until the copy is withdrawn below
    first_month = sorted(p.name for p in (raw / "events").iterdir())[0]
    original = raw / "events" / first_month / "app-web-c0001.parquet"
    early_copy = original.with_name("0-early-copy.parquet")
    shutil.copy(original, early_copy)

    inc, full = tmp_path / "inc", tmp_path / "full"
    # the first build describes the day before the held-back month: the second moves the
    # as-of date on, as a daily run does
    month_start = date.fromisoformat(settings.end_date[:7] + "-01")
    build(raw, inc, (month_start - timedelta(days=1)).isoformat())
    assert count(inc / "work.duckdb", "select count(*) from staging.stg_events__all where "
                                      f"_file = '{original}' and delivery_rank = 2") > 0
    staged_before = count(inc / "work.duckdb", "select count(*) from staging.stg_events__all")

    # the day's deliveries
    for source in HELD_SOURCES:
        shutil.move(held / source / last_month, raw / source / last_month)
    crm = raw / "customers" / first_month / "crm-c0000-0.csv"
    shutil.copy(crm, crm.with_name("0-redelivered.csv"))  # sorts first: its rows rank first
    touches = sorted((raw / "campaign_touches").glob("*/*"))[0]
    redelivered_touches = touches.with_name("0-redelivered" + "".join(touches.suffixes))
    shutil.copy(touches, redelivered_touches)
    for name, copy in (("app-web-c0000.parquet", "0-redelivered.parquet"),
                       ("mini-c0000.jsonl", "0-redelivered.jsonl")):
        shutil.copy(raw / "events" / first_month / name, raw / "events" / first_month / copy)
    rewritten = raw / "orders" / first_month / "shop-c0000-0.parquet"
    duckdb.sql(f"COPY (SELECT * FROM read_parquet('{rewritten}') LIMIT 5) "
               f"TO '{rewritten}.tmp' (FORMAT parquet)")
    Path(f"{rewritten}.tmp").replace(rewritten)
    withdrawn = raw / "events" / first_month / "mini-c0001.jsonl"
    withdrawn.unlink()
    early_copy.unlink()  # the original's rows are first deliveries again

    log = build(raw, inc, settings.end_date)
    assert "incremental model staging.stg_events__all" in log
    assert ("int_event_sightings: from every staged event (a staging build removed staged "
            "rows)") in log
    assert "incremental model staging.stg_campaign_touches__all" in log
    # the identity graph relabelled only the components the day touched
    relabelled, identifiers = map(int, re.search(
        r"identity graph: relabelling (\d+) of (\d+) identifiers", log).groups())
    assert 0 < relabelled < identifiers
    # the person-level models rebuilt only the people whose data changed
    changed = count(inc / "work.duckdb", "select count(*) from intermediate.int_changed_people")
    people = count(inc / "work.duckdb", "select count(distinct user_key) from "
                                        "intermediate.int_person_day_activity")
    assert 0 < changed < people
    assert count(inc / "work.duckdb", "select count(*) from intermediate.int_changed_people "
                                      "where user_key is null") == 0
    # int_events rebuilt every event of the people whose staged rows left with the withdrawn
    # file, and only the new events of the others
    assert 0 < count(inc / "work.duckdb", "select count(*) from intermediate.int_changed_people "
                                          "where all_events") < changed
    # a month of new orders and identifiers: the snapshots gained them
    assert_snapshots_current(inc / "work.duckdb")
    # the staging builds the chain has seen (taken from the log of builds) hold every
    # staged row's build
    assert count(inc / "work.duckdb", "select count(*) from (select distinct _staging_run "
                                      "from staging.stg_events) where _staging_run not in ("
                                      "select _staging_run from "
                                      "intermediate.int_person_chain_runs)") == 0
    # and the lifecycle models too: everyone else only gained the month's days
    stage_changed = count(inc / "work.duckdb", "select count(*) from "
                                               "intermediate.int_stage_changed_people")
    assert changed <= stage_changed < people
    assert count(inc / "work.duckdb", "select count(*) from intermediate.int_stage_changed_people "
                                      "where user_key is null") == 0
    # some of them changed only in the month's days: their rows before it stay (their days
    # and intervals grow like everyone else's); the others' are all rebuilt (the withdrawn
    # and redelivered files, and the month's new people and milestones)
    only_new_days = count(inc / "work.duckdb", "select count(*) from "
                                               "intermediate.int_stage_changed_people "
                                               "where not whole_history")
    assert 0 < only_new_days < stage_changed
    # and the churn features: the people whose whole history changed, and the snapshots the
    # month moved over
    churn_changed = count(inc / "work.duckdb", "select count(*) from "
                                               "intermediate.int_churn_changed_people")
    assert stage_changed - only_new_days <= churn_changed < people
    assert count(inc / "work.duckdb", "select count(*) from intermediate.int_churn_changed_people "
                                      "where user_key is null") == 0
    # the cohort masks and the activity totals gained the month's days (and the rebuilt
    # people's from every day)
    assert "int_person_cohort_masks: adding the days after date '" in log
    assert "int_person_activity_summary: adding the days after date '" in log
    build(raw, full, settings.end_date)

    assert differences(inc / "work.duckdb", full / "work.duckdb") == {}
    work = inc / "work.duckdb"
    # the cases above really happened: redelivered rows ranked first, originals second
    for name, copy in (("app-web-c0000.parquet", "0-redelivered.parquet"),
                       ("mini-c0000.jsonl", "0-redelivered.jsonl")):
        assert count(work, "select count(*) from staging.stg_events__all where _file like "
                           f"'%{copy}' and delivery_rank = 1") > 0
        assert count(work, "select count(*) from staging.stg_events__all where _file = "
                           f"'{raw / 'events' / first_month / name}' and delivery_rank = 2") > 0
    assert count(work, "select count(*) from staging.stg_customers__all where _file like "
                       "'%0-redelivered.csv' and delivery_rank = 1") > 0
    assert count(work, "select count(*) from staging.stg_customers__all where _file = "
                       f"'{crm}' and delivery_rank = 2") > 0
    assert count(work, "select count(*) from staging.stg_campaign_touches__all where _file = "
                       f"'{redelivered_touches}' and delivery_rank = 1") > 0
    assert count(work, "select count(*) from staging.stg_campaign_touches__all where _file = "
                       f"'{touches}' and delivery_rank = 2") > 0
    assert count(work, "select count(*) from staging.stg_orders__all where _file = "
                       f"'{rewritten}'") == 5
    assert count(work, "select count(*) from staging.stg_events__all where _file = "
                       f"'{withdrawn}'") == 0
    assert count(work, "select count(*) from staging.stg_events__all where _file = "
                       f"'{original}' and delivery_rank <> 1") == 0
    assert count(work, "select count(*) from staging.stg_events__all") > staged_before


def test_a_new_pii_key_restages_every_file(tmp_path):
    settings = GeneratorSettings(users=100, days=60, seed=5, chunk_users=100)
    generate(tmp_path / "gen", settings)
    raw, warehouse = tmp_path / "gen" / "raw", tmp_path / "wh"
    sql = "select count(*), list(distinct email_hash) from staging.stg_events__all"
    build(raw, warehouse, settings.end_date, select="path:models/staging")
    rows_before, hashes_before = query(warehouse / "work.duckdb", sql)
    # the events' log as an older version wrote it (no fingerprint): the stored rows' own
    # fingerprints decide there; the orders' log decides for the orders
    with duckdb.connect(str(warehouse / "work.duckdb")) as con:
        con.execute("alter table staging.stg_events__all__builds drop column fingerprint")
    build(raw, warehouse, settings.end_date, pii_key="another-key",
          select="path:models/staging")
    rows_after, hashes_after = query(warehouse / "work.duckdb", sql)
    assert rows_after == rows_before
    assert len(hashes_after) == len(hashes_before) > 1
    assert not (set(hashes_before) & set(hashes_after)) - {None}
    orders_sql = "select count(*), list(distinct email_hash) from staging.stg_orders__all"
    orders_after = query(warehouse / "work.duckdb", orders_sql)
    assert orders_after[0] > 0 and not set(orders_after[1]) & set(hashes_before) - {None}
    # the build log says which builds may have removed staged rows (the lifecycle chain
    # looks for built rows whose staged row is gone only after those): the first build and
    # the one that staged everything again did, a build with nothing new did not
    build(raw, warehouse, settings.end_date, pii_key="another-key",
          select="path:models/staging")
    log = "select rows_left, fingerprint from staging.stg_{}__all__builds order by built_at"
    with duckdb.connect(str(warehouse / "work.duckdb"), read_only=True) as con:
        events_log = con.execute(log.format("events")).fetchall()
        orders_log = con.execute(log.format("orders")).fetchall()
    assert [left for left, _ in events_log] == [True, True, False]
    assert [left for left, _ in orders_log] == [True, True, False]
    assert events_log[0][1] is None and events_log[1][1] == events_log[2][1] == orders_log[2][1]
    assert orders_log[0][1] != orders_log[1][1] == orders_log[2][1]
    # the log, not the stored rows, says whose fingerprint the rows carry: a last build
    # logged with another one stages every file again
    with duckdb.connect(str(warehouse / "work.duckdb")) as con:
        con.execute("update staging.stg_orders__all__builds set fingerprint = 'stale' "
                    "where built_at = (select max(built_at) from staging.stg_orders__all__builds)")
    build(raw, warehouse, settings.end_date, pii_key="another-key",
          select="path:models/staging")
    with duckdb.connect(str(warehouse / "work.duckdb"), read_only=True) as con:
        assert [left for left, _ in con.execute(log.format("orders")).fetchall()] == [
            True, True, False, True]


def test_a_withdrawn_file_alone_rebuilds_its_people(tmp_path):
    """No new data, one events file withdrawn: the people whose events it held are rebuilt
    (with those whose identity its identifiers had linked), and end as a full refresh has
    them. Without the check of built rows whose staged row is gone, this fails."""
    settings = GeneratorSettings(users=100, days=60, seed=11, chunk_users=100)
    generate(tmp_path / "gen", settings)
    raw, inc, full = tmp_path / "gen" / "raw", tmp_path / "inc", tmp_path / "full"
    build(raw, inc, settings.end_date)
    withdrawn = sorted((raw / "events").glob("*/*.parquet"))[-1]  # its people are known by then
    with duckdb.connect(str(inc / "work.duckdb"), read_only=True) as con:
        people = {key for (key,) in con.execute(
            "select distinct user_key from intermediate.int_events where _file = ?",
            [str(withdrawn)]).fetchall()}
    assert people
    withdrawn.unlink()

    log = build(raw, inc, settings.end_date)
    assert "lineage not searched" not in log
    build(raw, full, settings.end_date)
    assert differences(inc / "work.duckdb", full / "work.duckdb") == {}
    with duckdb.connect(str(inc / "work.duckdb"), read_only=True) as con:
        changed = dict(con.execute(
            "select user_key, reason from intermediate.int_changed_people").fetchall())
    assert people <= changed.keys()
    assert None not in changed  # a list of people, not "everyone"


def test_event_id_hash_collisions_change_nothing(tmp_path):
    """The day's event ids are looked up among the staged and built ones by a 64-bit hash
    (`_event_key`, dbt macro key_hash). Two stored events made to share their hash with
    events the day brings (collisions, which real ids almost never meet): one with an event
    of a new file, one with an event staged before but only now reached by the as-of date.
    Both are kept: every table ends as a full refresh has it, but for the forged hashes.
    Without the comparison of ids after the hashes in int_events' delete, the second fails."""
    settings = GeneratorSettings(users=100, days=60, seed=11, chunk_users=100)
    generate(tmp_path / "gen", settings)
    raw, inc, full = tmp_path / "gen" / "raw", tmp_path / "inc", tmp_path / "full"
    new_file, held, day_before = hold_last_events_file(raw, tmp_path, settings.end_date)
    # the staging and the lifecycle chain (where the ids are looked up), not the other marts
    chain = "+user_lifecycle_history"
    build(raw, inc, day_before, select=chain)
    new_id = duckdb.sql(f"select min(event_id) from read_parquet('{held}')").fetchall()[0][0]
    with duckdb.connect(str(inc / "work.duckdb")) as con:
        reached_id = con.execute("select min(event_id) from staging.stg_events where "
                                 f"occurred_at >= timestamp '{settings.end_date}'").fetchone()[0]
        forged = dict(con.execute("select event_id, user_key from intermediate.int_events "
                                  "order by event_id limit 2").fetchall())
        for old_id, id_met in zip(forged, (new_id, reached_id), strict=True):
            for table in ("staging.stg_events__all", "intermediate.int_events"):
                con.execute(f"update {table} set _event_key = hash(?) where event_id = ?",
                            [id_met, old_id])
    assert new_id and reached_id
    shutil.move(held, new_file)

    build(raw, inc, settings.end_date, select=chain)
    build(raw, full, settings.end_date, select=chain)
    assert differences(inc / "work.duckdb", full / "work.duckdb",
                       ignore=frozenset({"_event_key"})) == {}
    work = inc / "work.duckdb"
    for old_id, person in forged.items():
        assert count(work, "select count(*) from intermediate.int_events where event_id = "
                           f"'{old_id}'") == 1
        # the collision was met: the event's person is listed as changed
        assert count(work, "select count(*) from intermediate.int_changed_people where "
                           f"user_key = '{person}'") == 1


def test_identity_tuples_written_whole_after_a_map_build_without_them(tmp_path):
    """A build of the identity models up to the map alone merges two customers; the
    combinations of identifiers are not built then, so the next build of them writes them
    all again (it cannot tell which identifiers that build relabelled). That build stops
    there too, so the chain's next build compares every combination with its snapshot (not
    only those written since), and everything equals a full refresh. Writing or comparing
    only the day's changes would leave the merged customers' old persons on their rows."""
    settings = GeneratorSettings(users=60, days=30, seed=5, chunk_users=60)
    generate(tmp_path / "gen", settings)
    raw, inc, full = tmp_path / "gen" / "raw", tmp_path / "inc", tmp_path / "full"
    build(raw, inc, settings.end_date)
    add_identity_link(raw, settings.end_date)
    build(raw, inc, settings.end_date, select="+int_identity_map")
    log = build(raw, inc, settings.end_date, select="+int_identity_tuples")
    assert ("int_identity_tuples: everyone (its last build was not on top of the identity "
            "map's previous build)") in log
    log = build(raw, inc, settings.end_date)
    assert re.search(r"identity tuples: writing \d+ combinations", log)
    assert "compares only the combinations of identifiers" not in log
    build(raw, full, settings.end_date)
    assert differences(inc / "work.duckdb", full / "work.duckdb") == {}
