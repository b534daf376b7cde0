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

import gzip
import json
import re
import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
from conftest import RUN_BOOKKEEPING, RUN_LINEAGE, TEST_PII_KEY, run_dbt

from orchestration.config import dbt_vars, load_config
from orchestration.dbt_args import dbt_build_args
from orchestration.generator import GeneratorSettings, generate
from orchestration.landing import land

SCHEMAS = ("staging", "intermediate", "marts")
# the sources whose last month arrives with the day's deliveries
HELD_SOURCES = ("events", "orders", "customers", "campaign_touches")


def build(raw: Path, warehouse: Path, as_of: str, pii_key: str = TEST_PII_KEY,
          select: str = "path:models") -> str:
    """Land and `dbt build` the selected models (default: all before the ML stage); dbt's
    output."""
    warehouse.mkdir(parents=True, exist_ok=True)
    land(warehouse / "work.duckdb", raw, pii_key)
    args = dbt_build_args(dbt_vars(load_config(None), as_of, warehouse))
    return run_dbt([*args, "--select", select, "--exclude", "tag:after_ml"],
                   warehouse / "dbt_target")


def tables(con, db: str) -> dict[str, list[tuple[str, str]]]:
    rows = con.execute(
        "SELECT table_schema, table_name, column_name, data_type FROM "
        "information_schema.columns WHERE table_catalog = ? AND table_schema IN "
        f"{SCHEMAS} ORDER BY table_schema, table_name, ordinal_position", [db]).fetchall()
    out: dict[str, list[tuple[str, str]]] = {}
    for schema, table, column, kind in rows:
        out.setdefault(f"{schema}.{table}", []).append((column, kind))
    return out




def comparable(db: str, table: str, columns: list[tuple[str, str]],
               ignore: frozenset[str] = frozenset()) -> str:
    # sums of doubles may differ in the last bits when rows arrive in another order
    cols = [f'round("{c}", 6)' if kind in ("DOUBLE", "FLOAT") else f'"{c}"'
            for c, kind in columns if c not in RUN_LINEAGE | ignore]
    return f"SELECT {', '.join(cols)} FROM {db}.{table}"


def labelled_customers(work: Path) -> list[tuple[str, date]]:
    """Two customers in a labelled churn snapshot (which a daily run keeps for people whose
    data did not change): user id and snapshot date."""
    with duckdb.connect(str(work), read_only=True) as con:
        found = con.execute("""
            select profiles.user_id, max(features.snapshot_date)
            from intermediate.int_churn_features as features
            inner join intermediate.int_customer_profiles as profiles using (user_key)
            where features.label is not null and profiles.accounts = 1
            group by profiles.user_id order by profiles.user_id limit 2""").fetchall()
    assert len(found) == 2
    return found


def add_touch(raw: Path, user_id: str, sent: date, name: str) -> None:
    """A treatment touch of the customer sent that day, in a file of its own."""
    folder = raw / "campaign_touches" / f"month={sent:%Y-%m}"
    folder.mkdir(parents=True, exist_ok=True)
    touch = {"touch_id": f"t-{name}", "campaign_id": f"winback-{name}",
             "campaign_type": "winback", "sent_at": f"{sent}T12:00:00", "channel": "email",
             "offer": "come_back_message", "cost": 0.05, "group": "treatment",
             "user_id": user_id}
    with gzip.open(folder / f"touches-{name}.jsonl.gz", "wt") as out:
        out.write(json.dumps(touch) + "\n")


def add_late_touch(raw: Path, user_id: str, snapshot: date) -> None:
    """A treatment touch sent two days before the snapshot, delivered late."""
    add_touch(raw, user_id, snapshot - timedelta(days=2), "late")


def add_country_change(raw: Path, user_id: str, updated: str) -> None:
    """The customer's latest CRM row again, updated to another country (the same
    identifiers: the same person)."""
    folder = raw / "customers" / f"month={updated[:7]}"
    duckdb.sql(f"""
        copy (
            select * exclude (month) replace (
                '{updated}T06:00:00' as updated_at,
                case when country = 'FR' then 'DE' else 'FR' end as country)
            from read_csv('{raw}/customers/*/*.csv', all_varchar = true, hive_partitioning = true)
            where user_id = '{user_id}' order by updated_at desc limit 1)
        to '{folder / "crm-late.csv"}' (header)""")


def add_identity_link(raw: Path, day: str) -> tuple[str, str]:
    """A web event late on `day` from one customer's device, signed in with no account but
    another customer's email: the two are one person from then on. Their user ids."""
    device_owner, anonymous_id = duckdb.sql(f"""
        select user_id, min(anonymous_id) from read_parquet('{raw}/events/*/*.parquet')
        where user_id is not null and anonymous_id is not null
        group by user_id order by user_id limit 1""").fetchall()[0]
    email_owner, email = duckdb.sql(f"""
        select user_id, min(email) from read_csv('{raw}/customers/*/*.csv', all_varchar = true)
        where user_id <> '{device_owner}' and email is not null
        group by user_id order by user_id limit 1""").fetchall()[0]
    duckdb.sql(f"""
        copy (
            select * exclude (month) replace (
                'e-identity-link' as event_id, cast(null as varchar) as user_id,
                '{anonymous_id}' as anonymous_id, '{email}' as email,
                cast('{day} 20:00:00+00' as timestamptz) as occurred_at)
            from read_parquet('{raw}/events/*/*.parquet', hive_partitioning = true)
            where user_id = '{device_owner}' limit 1)
        to '{raw / "events" / f"month={day[:7]}" / "link-late.parquet"}' (format parquet)""")
    return device_owner, email_owner


def add_later_copy(raw: Path, day: str, original: Path) -> str:
    """An event of a customer with nothing in `original`, delivered again under a name that
    sorts first, with its time moved after `day` (the as-of date): the copy is its first
    delivery now, and the event leaves the history up to `day`. Its event id."""
    # the latest of several events with the same identifiers: no first sighting moves
    event_id, source = duckdb.sql(f"""
        select event_id, filename from read_parquet('{raw}/events/*/*.parquet', filename = true)
        where user_id is not null and user_id not in (
            select user_id from read_parquet('{original}') where user_id is not null)
        qualify count(*) over (partition by user_id, anonymous_id, email) > 1
            and row_number() over (partition by user_id, anonymous_id, email
                                   order by occurred_at desc) = 1
        order by event_id limit 1""").fetchall()[0]
    duckdb.sql(f"""
        copy (
            select * replace (cast('{day} 00:00:00+00' as timestamptz) + interval 36 hours
                              as occurred_at)
            from read_parquet('{source}', hive_partitioning = false)
            where event_id = '{event_id}')
        to '{Path(source).with_name("0-moved-later.parquet")}' (format parquet)""")
    return event_id


def add_late_event(raw: Path, day: str) -> str:
    """A login of the customer with the highest user id, ten days before `day`, delivered
    late in a file of its own: only the staging build says it is new. Its event id."""
    duckdb.sql(f"""
        copy (
            select * exclude (month) replace (
                'e-late-login' as event_id, 'login' as event_type,
                cast('{day} 12:00:00+00' as timestamptz) - interval 10 days as occurred_at)
            from read_parquet('{raw}/events/*/*.parquet', hive_partitioning = true)
            where user_id is not null order by user_id desc, event_id limit 1)
        to '{raw / "events" / f"month={day[:7]}" / "late-login.parquet"}' (format parquet)""")
    return "e-late-login"


def add_shared_email(raw: Path, updated: str) -> str:
    """A customer's latest CRM row again, with another customer's email: seen with two
    accounts, that email is shared and links nobody. The other customer's user id."""
    owner, email, borrower = duckdb.sql(f"""
        with customers as (
            select user_id, min(email) as email
            from read_csv('{raw}/customers/*/*.csv', all_varchar = true)
            where email is not null group by user_id)
        select user_id, email, (select max(user_id) from customers)
        from customers order by user_id desc limit 1 offset 1""").fetchall()[0]
    duckdb.sql(f"""
        copy (
            select * exclude (month) replace (
                '{updated}T06:00:00' as updated_at, '{email}' as email)
            from read_csv('{raw}/customers/*/*.csv', all_varchar = true, hive_partitioning = true)
            where user_id = '{borrower}' order by updated_at desc limit 1)
        to '{raw / "customers" / f"month={updated[:7]}" / "crm-shared.csv"}' (header)""")
    return owner


def differences(a: Path, b: Path, ignore: frozenset[str] = frozenset()
                ) -> dict[str, tuple[int, int]]:
    con = duckdb.connect()
    con.execute(f"ATTACH '{a}' AS inc (READ_ONLY)")
    con.execute(f"ATTACH '{b}' AS full_refresh (READ_ONLY)")
    left, right = tables(con, "inc"), tables(con, "full_refresh")
    assert left.keys() == right.keys()
    out = {}
    for table, columns in left.items():
        if table in RUN_BOOKKEEPING:
            continue
        assert columns == right[table], table
        x = comparable("inc", table, columns, ignore)
        y = comparable("full_refresh", table, columns, ignore)
        only_inc = con.execute(f"SELECT count(*) FROM ({x} EXCEPT ALL {y})").fetchone()[0]
        only_full = con.execute(f"SELECT count(*) FROM ({y} EXCEPT ALL {x})").fetchone()[0]
        if only_inc or only_full:
            out[table] = (only_inc, only_full)
    return out


def query(db: Path, sql: str) -> tuple:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchone()


def count(db: Path, sql: str) -> int:
    return query(db, sql)[0]


SNAPSHOTS = {
    "tuples": ("int_identity_tuples", "tuple_key, user_key"),
    "orders": ("int_orders", "order_id, user_key, order_date, status, channel, revenue"),
}


def assert_snapshots_current(db: Path) -> None:
    """After a daily build the chain's snapshots equal the tables they snapshot (the build
    applies the day's differences to them instead of copying the tables), and no table of
    differences is left."""
    for part, (model, columns) in SNAPSHOTS.items():
        for a, b in ((f"intermediate.{model}", f"intermediate.int_person_chain_{part}"),
                     (f"intermediate.int_person_chain_{part}", f"intermediate.{model}")):
            assert count(db, f"select count(*) from (select {columns} from {a} "
                             f"except all select {columns} from {b})") == 0, (part, a)
    assert count(db, "select count(*) from information_schema.tables "
                     "where table_name like 'int_person_chain_%_differences'") == 0


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


def hold_last_events_file(raw: Path, tmp_path: Path, end_date: str) -> tuple[Path, Path, str]:
    """Take the last events file out of the raw dir (the day's new file, put back later):
    its path, where it is held, and the day before `end_date` (the first build's as-of)."""
    new_file = sorted((raw / "events").glob("*/*.parquet"))[-1]
    held = tmp_path / new_file.name
    shutil.move(new_file, held)
    return new_file, held, (date.fromisoformat(end_date) - timedelta(days=1)).isoformat()


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


def assert_key_test_reads_written_churn_rows(warehouse: Path, before: Path) -> None:
    """The daily build's key test of int_churn_features (as compiled) read every row the
    build wrote (those not in the warehouse `before` it), not every row, and finds a
    duplicate of a written row."""
    compiled = next((warehouse / "dbt_target" / "compiled" / "ulm" / "models" / "intermediate"
                     / "int_churn_features.yml").glob("unique_combination_int_churn_features*"))
    test = compiled.read_text()
    tested = re.search(r"from (\(select \* from .*? dbt_subquery)", test, re.S).group(1)
    table = "intermediate.int_churn_features"
    with duckdb.connect(str(warehouse / "work.duckdb")) as con:
        con.execute(f"attach '{before}' as before (read_only)")
        written = f"select * from {table} except all select * from before.{table}"
        assert con.execute(f"select count(*) from ({written})").fetchone()[0] > 0
        assert con.execute(f"select count(*) from ({written} except all "
                           f"select * from {tested})").fetchone()[0] == 0
        assert (con.execute(f"select count(*) from {tested}").fetchone()[0]
                < con.execute(f"select count(*) from {table}").fetchone()[0])
        failures = f"select count(*) from ({test})"
        assert con.execute(failures).fetchone()[0] == 0
        con.execute("begin")
        con.execute(f"insert into {table} select * from ({written}) limit 1")
        assert con.execute(failures).fetchone()[0] == 1
        con.execute("rollback")


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


def add_order_update(raw: Path, day: str) -> str:
    """A newer version of a completed order of an account, refunded on `day`, delivered in a
    file of its own. Its order id."""
    order_id = duckdb.sql(f"""
        select order_id from read_parquet('{raw}/orders/*/*.parquet')
        where status = 'completed' and user_id is not null order by order_id limit 1
        """).fetchall()[0][0]
    duckdb.sql(f"""
        copy (
            select * exclude (month) replace ('refunded' as status, '{day}T08:00:00' as updated_at)
            from read_parquet('{raw}/orders/*/*.parquet', hive_partitioning = true)
            where order_id = '{order_id}')
        to '{raw / "orders" / f"month={day[:7]}" / "order-update.parquet"}' (format parquet)""")
    return order_id


def add_erasure(raw: Path, day: str, spare: tuple[str, ...]) -> str:
    """A delete request on `day` from the account with the most orders, `spare` excepted.
    Its user id."""
    user_id = duckdb.sql(f"""
        select user_id from read_parquet('{raw}/orders/*/*.parquet')
        where user_id is not null and user_id not in {spare!r}
        group by user_id order by count(*) desc, user_id limit 1""").fetchall()[0][0]
    folder = raw / "privacy_requests" / f"month={day[:7]}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requests-late.csv").write_text(
        "request_id,request_type,requested_at,user_id,email\n"
        f"r-late,delete,{day}T09:00:00,{user_id},\n")
    return user_id


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
