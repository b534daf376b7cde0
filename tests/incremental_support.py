"""Builders, raw-data edits and comparisons shared by the incremental tests
(test_incremental.py, test_incremental_people.py)."""

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


def hold_last_events_file(raw: Path, tmp_path: Path, end_date: str) -> tuple[Path, Path, str]:
    """Take the last events file out of the raw dir (the day's new file, put back later):
    its path, where it is held, and the day before `end_date` (the first build's as-of)."""
    new_file = sorted((raw / "events").glob("*/*.parquet"))[-1]
    held = tmp_path / new_file.name
    shutil.move(new_file, held)
    return new_file, held, (date.fromisoformat(end_date) - timedelta(days=1)).isoformat()


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
