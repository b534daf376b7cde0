"""Incremental builds of a person-level change alone (new events, a late touch, a CRM
correction, an identity merge and split, a day of orders) give the same data as a full
refresh, and write only what the change touched. Helpers: incremental_support.py."""

from __future__ import annotations

import re
import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
from incremental_support import (
    add_country_change,
    add_erasure,
    add_identity_link,
    add_late_event,
    add_late_touch,
    add_later_copy,
    add_order_update,
    add_shared_email,
    add_touch,
    assert_key_test_reads_written_churn_rows,
    assert_snapshots_current,
    build,
    count,
    differences,
    hold_last_events_file,
    labelled_customers,
    query,
)

from orchestration.generator import GeneratorSettings, generate


def test_the_day_s_events_are_added_to_the_event_sightings(tmp_path):
    """A day with new events and nothing gone or redelivered: int_event_sightings adds the
    events of the new staging build (a month of one file's events, most of them new sightings
    of known combinations) and those of earlier builds that the moved as-of date reaches to
    what it counted before, instead of counting every staged event again, and the identity
    models end as a full refresh has them. Without the merge with the counted rows, or
    without the rows the as-of date reaches, this fails."""
    settings = GeneratorSettings(users=100, days=60, seed=5, chunk_users=100)
    generate(tmp_path / "gen", settings)
    raw, inc, full = tmp_path / "gen" / "raw", tmp_path / "inc", tmp_path / "full"
    new_file, held, day_before = hold_last_events_file(raw, tmp_path, settings.end_date)
    identity = "+int_identity_tuples"
    log = build(raw, inc, day_before, select=identity)
    assert "int_event_sightings: from every staged event (no intermediate." in log
    reached = count(inc / "work.duckdb", "select count(*) from staging.stg_events "
                                         f"where occurred_at >= timestamp '{settings.end_date}'")
    assert reached > 0  # staged, not counted yet
    shutil.move(held, new_file)

    log = build(raw, inc, settings.end_date, select=identity)
    assert "int_event_sightings: adding the events not counted yet" in log
    build(raw, full, settings.end_date, select=identity)
    assert differences(inc / "work.duckdb", full / "work.duckdb") == {}
    assert count(inc / "work.duckdb", "select sum(sightings) from intermediate.int_event_sightings"
                 ) == count(inc / "work.duckdb", "select count(*) from staging.stg_events where "
                            f"occurred_at < timestamp '{settings.end_date}' + interval 1 day")


def test_a_late_touch_and_a_crm_correction_rebuild_their_churn_features(tmp_path):
    """The as-of date moves on a day; a treatment touch delivered late and a CRM correction
    change the churn features of two people at snapshots a daily run otherwise keeps: they
    are rebuilt, everyone else's scoring row is the last build's moved on a day (its window
    sums gain the day entering and lose the days leaving each window), and everything ends
    as a full refresh has it. The key test reads fewer rows than the table holds, yet every
    row the build wrote (and finds a duplicate of one). Without the touch or profile
    comparison, with a window sum not moved, or with a key test that misses written rows,
    this fails."""
    settings = GeneratorSettings(users=100, days=60, seed=11, chunk_users=100)
    generate(tmp_path / "gen", settings)
    raw, inc, full = tmp_path / "gen" / "raw", tmp_path / "inc", tmp_path / "full"
    end = date.fromisoformat(settings.end_date)
    day_before = (end - timedelta(days=1)).isoformat()
    # a touch of a customer active that week, which leaves the 90-day window the day after
    active = duckdb.sql(f"""
        select min(user_id) from read_parquet('{raw}/events/*/*.parquet')
        where user_id is not null and occurred_at >= timestamp '{day_before}' - interval 7 days
        """).fetchall()[0][0]
    add_touch(raw, active, end - timedelta(days=90), "leaving")
    build(raw, inc, day_before)
    (touched, snapshot), (moved, _) = labelled_customers(inc / "work.duckdb")
    add_late_touch(raw, touched, snapshot)
    add_country_change(raw, moved, settings.end_date)
    before = tmp_path / "before.duckdb"
    shutil.copy(inc / "work.duckdb", before)

    log = build(raw, inc, settings.end_date)
    assert ("int_churn_features: the scoring rows of the unchanged people moved on 1 day "
            f"from {day_before}") in log
    build(raw, full, settings.end_date)
    assert differences(inc / "work.duckdb", full / "work.duckdb") == {}
    assert_key_test_reads_written_churn_rows(inc, before)
    with duckdb.connect(str(inc / "work.duckdb"), read_only=True) as con:
        reasons = dict(con.execute(
            "select profiles.user_id, changed.reason from intermediate.int_churn_changed_people "
            "as changed inner join intermediate.int_customer_profiles as profiles using (user_key)"
        ).fetchall())
        scoring, moved_on = con.execute(
            "select count(*), (select moved_on_scoring_rows from "
            "intermediate.int_churn_features_state) from intermediate.int_churn_features "
            "where is_scoring_snapshot").fetchone()
        touches_of_active = con.execute(
            "select features.campaign_touches_90 from intermediate.int_churn_features as "
            "features inner join intermediate.int_customer_profiles as profiles using "
            "(user_key) where features.is_scoring_snapshot and profiles.user_id = ?",
            [active]).fetchone()
    assert (reasons[touched], reasons[moved]) == ("touches", "profile")
    assert active not in reasons
    assert touches_of_active == (0,)  # its touch left the window
    assert scoring / 2 < moved_on < scoring  # most scoring rows were moved on, not computed


def test_a_ranking_that_never_ran_is_done_by_the_next_build(tmp_path):
    """Redeliveries are ranked after the staging build commits. When that ranking never ran
    (the process died between the two), the next build, with no new file, ranks those rows;
    a build that ranked only its own rows would leave every redelivery first."""
    settings = GeneratorSettings(users=100, days=60, seed=7, chunk_users=100)
    generate(tmp_path / "gen", settings)
    raw, warehouse = tmp_path / "gen" / "raw", tmp_path / "wh"
    build(raw, warehouse, settings.end_date, select="path:models/staging")
    ranks = "select event_id, _file, _row, delivery_rank from staging.stg_events__all"
    with duckdb.connect(str(warehouse / "work.duckdb")) as con:
        ranked = sorted(con.execute(ranks).fetchall(), key=str)
        assert any(rank and rank > 1 for *_, rank in ranked)
        # the state the build's commit leaves before its ranking: every valid row first,
        # the run noted as unranked
        con.execute("update staging.stg_events__all set delivery_rank = 1 "
                    "where reject_reason is null")
        con.execute("insert into staging.stg_events__all__unranked_runs "
                    "select distinct _staging_run, false from staging.stg_events__all")

    build(raw, warehouse, settings.end_date, select="path:models/staging")
    with duckdb.connect(str(warehouse / "work.duckdb"), read_only=True) as con:
        assert sorted(con.execute(ranks).fetchall(), key=str) == ranked
        assert con.execute("select count(*) from "
                           "staging.stg_events__all__unranked_runs").fetchone()[0] == 0


def test_an_identity_merge_a_split_and_a_redelivery_alone(tmp_path):
    """No new activity and no file gone: a web event links one customer's device to
    another's email (one person now), a CRM row gives a customer another's email (shared
    now, it links nobody: its owner splits off it), and an events file is delivered again
    under a name that sorts first, as is one event of another customer with its time moved
    after the as-of date, a late login of a third customer ten days back, and the generated
    events file with the most malformed rows (the quarantine takes the rows of the keys the
    build rewrote without reading every staged row). The identity
    build relabels only the components these
    touched; the redeliveries are ranked from the rows the build stamped (no scan of every
    id) and the build's uniqueness test of stg_events passes; everything equals a full
    refresh, though no build removed staged rows (so the chain did not look for built rows
    whose staged row is gone), and the untouched people's identity rows stay in place (not
    written again, nor their combinations of identifiers). Without the comparison of edges,
    or without the ranking (the uniqueness test fails the build), or with the identity map
    or its tuples rebuilt whole, this fails."""
    settings = GeneratorSettings(users=100, days=60, seed=11, chunk_users=100)
    generate(tmp_path / "gen", settings)
    raw, inc, full = tmp_path / "gen" / "raw", tmp_path / "inc", tmp_path / "full"
    build(raw, inc, settings.end_date)
    device_owner, email_owner = add_identity_link(raw, settings.end_date)
    owner = add_shared_email(raw, settings.end_date)
    original = sorted((raw / "events").glob("*/*.parquet"))[-1]
    copy = original.with_name("0-redelivered.parquet")
    shutil.copy(original, copy)
    # and the generated file with the most malformed rows again
    defective = Path(query(inc / "work.duckdb", (
        "select file from intermediate.int_quarantine_rows where source = 'events' "
        "and file like '%.parquet' group by file order by count(*) desc, file limit 1"))[0])
    defective_copy = defective.with_name("0-redelivered-defective.parquet")
    shutil.copy(defective, defective_copy)
    moved = add_later_copy(raw, settings.end_date, original)
    late = add_late_event(raw, settings.end_date)
    person = ("select count(distinct user_key) from intermediate.int_identity_map "
              "where node_id in ('u:{}', 'u:{}')")
    assert count(inc / "work.duckdb", person.format(device_owner, email_owner)) == 2

    log = build(raw, inc, settings.end_date)
    relabelled, identifiers = map(int, re.search(
        r"identity graph: relabelling (\d+) of (\d+) identifiers", log).groups())
    assert 0 < relabelled < identifiers / 4
    assert "unique_stg_events_event_id" in log
    # no staged row left (a redelivery rewrites rows, it removes none): the chain did not
    # look for built rows whose staged row is gone, and still equals a full refresh
    assert "int_changed_people: no unseen staging build removed rows" in log
    # the redelivery rewrote staged rows the event sightings had counted: counted again
    assert ("int_event_sightings: from every staged event (a staging build rewrote earlier "
            "rows of an id it staged again)") in log
    # the quarantine took the rows of the build's keys (the copy's rejected rows among
    # them) without reading every staged row again
    assert "int_quarantine_rows: adding the rows of the unseen staging builds (4)" in log
    assert_snapshots_current(inc / "work.duckdb")
    # the build inserted the relabelled identifiers' rows into the map (everyone else's
    # stayed), and the edges' snapshot took the day's added and gone edges: it is the edges
    assert "OK created sql incremental model intermediate.int_identity_map " in log
    # the combinations of identifiers written again: the new ones and those of the
    # relabelled identifiers, not every one
    written = int(re.search(r"identity tuples: writing (\d+) combinations", log).group(1))
    assert 0 < written < count(inc / "work.duckdb",
                               "select count(*) from intermediate.int_identity_tuples") / 4
    # the chain compared only those combinations with its snapshot of them
    assert ("int_changed_people: compares only the combinations of identifiers "
            "int_identity_tuples wrote with the snapshot") in log
    # and their key tests read the rows written (with any row sharing their key)
    compiled = inc / "dbt_target" / "compiled" / "ulm" / "models" / "intermediate"
    for test, written_rows in (("int_identity_map.yml/unique_int_identity_map_node_id.sql",
                                "identity_work.relabel"),
                               ("int_identity_tuples.yml/unique_int_identity_tuples_tuple_key.sql",
                                "identity_work.tuple_changes")):
        assert written_rows in (compiled / test).read_text()
    assert count(inc / "work.duckdb", (
        "select count(*) from ((select src, dst from intermediate.int_identity_edges "
        "except select src, dst from intermediate.int_identity_map_edges) union all "
        "(select src, dst from intermediate.int_identity_map_edges except "
        "select src, dst from intermediate.int_identity_edges))")) == 0
    build(raw, full, settings.end_date)
    assert differences(inc / "work.duckdb", full / "work.duckdb") == {}
    work = inc / "work.duckdb"
    assert count(work, person.format(device_owner, email_owner)) == 1
    assert count(work, "select count(*) from intermediate.int_identity_map as m "
                       "inner join intermediate.int_identity_nodes as n using (node_id) "
                       f"where m.is_shared and n.linked_accounts = 2 and m.user_key <> "
                       f"(select user_key from intermediate.int_identity_map where node_id = "
                       f"'u:{owner}')") == 1
    # the copy's rejected rows were quarantined as well as the original's
    rejected = "select count(*) from intermediate.int_quarantine_rows where file = '{}'"
    assert count(work, rejected.format(defective_copy)) == \
        count(work, rejected.format(defective)) > 0
    ranks = ("select count(*) from staging.stg_events__all where _file = '{}' "
             "and reject_reason is null and delivery_rank = {}")
    assert count(work, ranks.format(copy, 1)) > 0
    assert count(work, ranks.format(original, 1)) == 0  # every one a second delivery now
    assert count(work, "select count(*) from intermediate.int_events "
                       f"where event_id = '{moved}'") == 0
    assert count(work, "select count(*) from intermediate.int_events "
                       f"where event_id = '{late}'") == 1


def test_a_day_of_orders_writes_only_the_orders_it_touched(tmp_path):
    """The as-of date moves on a day, which lets in the orders staged for it; an order gets a
    newer version, two customers become one person and a customer asks to be erased.
    int_orders writes again only the orders of the unseen staging build, of the day and of
    the combinations of identifiers int_identity_tuples wrote, and deletes the erased
    customer's; the chain compares only those with its snapshot of the orders, and
    everything equals a full refresh. Without any one of those four parts this fails."""
    settings = GeneratorSettings(users=100, days=60, seed=13, chunk_users=100)
    generate(tmp_path / "gen", settings)
    raw, inc, full = tmp_path / "gen" / "raw", tmp_path / "inc", tmp_path / "full"
    day_before = (date.fromisoformat(settings.end_date) - timedelta(days=1)).isoformat()
    # the models up to the end of the person-level chain (the chain's comparison of orders
    # needs its last build complete)
    chain = "+user_lifecycle_history"
    log = build(raw, inc, day_before, select=chain)
    assert "int_orders: writing" not in log
    assert count(inc / "work.duckdb", "select count(*) from staging.stg_orders "
                                      f"where ordered_at >= timestamp '{settings.end_date}'") > 0
    updated = add_order_update(raw, settings.end_date)
    device_owner, email_owner = add_identity_link(raw, settings.end_date)
    erased = add_erasure(raw, settings.end_date, (device_owner, email_owner))

    log = build(raw, inc, settings.end_date, select=chain)
    written = int(re.search(
        r"int_orders: writing again (\d+) orders \(of 1 unseen staging builds, the days after "
        r"the last build, the changed combinations of identifiers, the people erased since\)",
        log).group(1))
    orders = count(inc / "work.duckdb", "select count(*) from intermediate.int_orders")
    assert 0 < written < orders / 4
    # the chain compared only those orders with its snapshot, their key test read only those
    assert ("int_changed_people: compares only the orders int_orders wrote or deleted with "
            "the snapshot") in log
    compiled = inc / "dbt_target" / "compiled" / "ulm" / "models" / "intermediate"
    assert "orders_work.touched" in (
        compiled / "int_orders.yml" / "unique_int_orders_order_id.sql").read_text()
    assert_snapshots_current(inc / "work.duckdb")
    build(raw, full, settings.end_date, select=chain)
    assert differences(inc / "work.duckdb", full / "work.duckdb") == {}
    work = inc / "work.duckdb"
    assert query(work, f"select status from intermediate.int_orders where order_id = '{updated}'"
                 ) == ("refunded",)
    of_accounts = ("select count({}) from intermediate.int_orders where order_id in (select "
                   "order_id from staging.stg_orders where user_id in {})")
    assert count(work, of_accounts.format("*", (erased, erased))) == 0
    assert count(work, of_accounts.format("distinct user_key", (device_owner, email_owner))) == 1
