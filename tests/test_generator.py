import hashlib
import json
from pathlib import Path

import duckdb
import pytest

from orchestration.generator import GeneratorSettings, generate


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "generation.json" not in p.name}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen")
    report = generate(out, GeneratorSettings(users=800, days=120, seed=3, chunk_users=300))
    return out, report


def test_deterministic_per_seed(tmp_path, generated):
    out, _ = generated
    again = tmp_path / "again"
    generate(again, GeneratorSettings(users=800, days=120, seed=3, chunk_users=300))
    assert digest(out / "raw") == digest(again / "raw")
    other = tmp_path / "other"
    generate(other, GeneratorSettings(users=800, days=120, seed=4, chunk_users=300))
    assert digest(out / "raw") != digest(other / "raw")


def test_writes_every_source_in_mixed_formats(generated):
    out, report = generated
    suffixes = {p.name.split(".", 1)[1] for p in (out / "raw").rglob("*.*")}
    assert {"parquet", "csv", "jsonl", "jsonl.gz", "csv.gz"} <= suffixes
    for source in ("events", "orders", "customers", "campaign_touches", "privacy_requests"):
        assert report.rows[source] > 0, source
        assert any((out / "raw" / source).rglob("*")), source
    # nested folders (month=YYYY-MM/, and pos/ inside orders)
    assert any(p.parent.name.startswith("month=") for p in (out / "raw" / "events").rglob("*.*"))


def test_realistic_defects_and_identifiers(generated):
    out, _ = generated
    raw = out / "raw"
    con = duckdb.connect()
    ev = f"read_parquet('{raw}/events/**/*.parquet', union_by_name=true)"
    total, distinct_ids = con.execute(
        f"select count(*), count(distinct event_id) from {ev}").fetchall()[0]
    assert total > distinct_ids  # redeliveries
    assert con.execute(f"select count(*) from {ev} where occurred_at is null").fetchall()[0][0]
    amounts = con.execute(f"select count(amount), count(*) filter (where isnan(amount)) "
                          f"from {ev}").fetchall()[0]
    assert amounts[0] > 0 and amounts[1] == 0  # absent amounts are null, never NaN
    mini = f"read_json('{raw}/events/**/*.jsonl', union_by_name=true, format='newline_delimited')"
    bad_ts = con.execute(f"select count(*) from {mini} where occurred_at = 'not-a-date'")
    assert bad_ts.fetchall()[0][0] > 0
    styles = con.execute(
        f"select count(*) filter (where occurred_at like '%Z'), "
        f"count(*) filter (where regexp_matches(occurred_at, '[+-]\\d\\d:\\d\\d$')), "
        f"count(*) filter (where regexp_matches(occurred_at, '\\d$')) from {mini}").fetchall()[0]
    assert all(n > 0 for n in styles), styles  # UTC, offsets and naive times
    anon_only = con.execute(
        f"select count(*) from {ev} where user_id is null and anonymous_id is not null "
        "and event_type = 'page_view'").fetchall()[0][0]
    assert anon_only > 0
    pos = con.execute(
        f"select count(*), count(user_id) from read_csv('{raw}/orders/**/pos-*.csv', "
        "all_varchar=true, union_by_name=true)").fetchall()[0]
    assert pos[0] > 0 and pos[1] == 0  # store orders known only by phone
    names = con.execute(
        f"select string_agg(name, '') from read_csv('{raw}/customers/**/*.csv', "
        "all_varchar=true, union_by_name=true)").fetchall()[0][0]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in names)  # Chinese names
    reasons = con.execute(
        f"select count(*) from {ev} where event_type = 'subscription_cancel' "
        "and properties like '%cancel_reason%'").fetchall()[0][0]
    assert reasons > 0


def test_truth_is_written_separately(generated):
    out, _ = generated
    truth = out / "truth"
    con = duckdb.connect()
    people = con.execute(
        f"select count(*), count(churn_date), count(reactivation_date) "
        f"from read_parquet('{truth}/people-*.parquet')").fetchall()[0]
    assert people[0] == 800 and people[1] > 0 and people[2] > 0
    ids = con.execute(f"select count(distinct identifier_type) from "
                      f"read_parquet('{truth}/identities-*.parquet')").fetchall()[0][0]
    assert ids == 4
    campaigns = json.loads((truth / "campaigns.json").read_text())
    assert campaigns["true_uplift"] > 0
    groups = {k for c in campaigns["campaigns"].values() for k in c}
    assert {"treatment_users", "control_users"} <= groups


def test_chunking_keeps_the_same_people(tmp_path):
    # the chunk size changes the random streams, but never the number of people
    a = generate(tmp_path / "a", GeneratorSettings(users=500, days=60, seed=1, chunk_users=100))
    assert a.rows["customers"] > 0
    con = duckdb.connect()
    n = con.execute(f"select count(*) from read_parquet('{tmp_path}/a/truth/people-*.parquet')"
                    ).fetchall()[0][0]
    assert n == 500


def test_no_day_holds_a_pile_of_crm_updates(generated):
    """Profile updates due after the last day are not written (clipping them onto the last
    day made it several times a usual day: the volume check caught it at 100k users)."""
    out, _ = generated
    with duckdb.connect() as con:
        per_day = [n for (n,) in con.execute(f"""
            select count(*) from read_csv('{out}/raw/customers/**/*.csv*', all_varchar=true,
                                          union_by_name=true)
            group by left(updated_at, 10) order by left(updated_at, 10)""").fetchall()]
    median = sorted(per_day)[len(per_day) // 2]
    assert per_day[-1] <= 3 * median, (per_day[-1], median)
