"""The defect corpus (tests/defects/): every kind of bad input gives its stated outcome:
quarantined with a reason, accepted and handled, or a blocking failure with a clear message;
and a blocked run never touches the previous serving database."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from corpus import DEFECTS as CORPUS
from corpus import defect_corpus, land_defects

from orchestration.cli import main

pytestmark = pytest.mark.e2e

DEFECTS = defect_corpus()


def q(db: Path, sql: str, params=None):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def copy_world(world, tmp_path: Path) -> tuple[Path, Path]:
    raw, warehouse = tmp_path / "raw", tmp_path / "warehouse"
    shutil.copytree(world.raw, raw)
    shutil.copytree(world.warehouse, warehouse)
    return raw, warehouse


def test_every_corpus_file_has_an_outcome():
    files = {p.name for p in CORPUS.iterdir() if p.name != "defects.yml"}
    assert files == {d["file"] for d in DEFECTS}
    assert {d["outcome"] for d in DEFECTS} == {"quarantine", "accept", "block"}


def test_quarantined_and_accepted_defects(small_world):
    """The small world carries these defect files (conftest lands them before its run)."""
    kept = [d for d in DEFECTS if d["outcome"] in ("quarantine", "accept")]
    assert small_world.exit_code == 0
    warehouse = small_world.warehouse
    work, serving = warehouse / "work.duckdb", warehouse / "serving.duckdb"
    # quarantined with the stated reasons, nothing else from those files
    for d in (d for d in kept if d["outcome"] == "quarantine"):
        got = dict(q(work, "select reason, count(*) from intermediate.int_quarantine_rows "
                           "where file like ? group by reason", [f"%/defects/{d['file']}"]))
        assert got == d["reasons"], d["file"]
    # every source still reconciles: raw = staged + duplicates + quarantined
    assert q(serving, "select bool_and(is_reconciled) from marts.source_reconciliation") == [
        (True,)]
    # a duplicated delivery is counted, not staged twice
    assert q(work, "select sum(rows) from landing.file_inventory where path like "
                   "'%redelivered%'") == [(4,)]
    assert q(work, "select count(*) from staging.stg_events where event_id like 'dx-rd-%'") == [
        (2,)]
    # empty files are inventoried with zero rows
    assert q(work, "select sum(rows) from landing.file_inventory where path like "
                   "'%empty_file.csv' or path like '%header_only.csv'") == [(0,)]
    # one phone typed in for 300 accounts links none of them
    assert q(serving, "select count(distinct user_key) from marts.dim_users "
                      "where user_id like 'DXSP%'") == [(300,)]
    # quotes, SQL-looking text and unicode are data, kept verbatim
    cities = dict(q(serving, "select user_id, city from marts.dim_users "
                             "where user_id like 'DXQ%'"))
    assert cities == {"DXQ1": "'; DROP TABLE marts.dim_users; --",
                      "DXQ2": 'São Paulo "centro"', "DXQ3": "北京 \\ 朝阳"}
    props = dict(q(work, "select event_id, properties from staging.stg_events "
                         "where event_id like 'dx-js-%'"))
    assert "DROP TABLE raw.events" in props["dx-js-1"] and '\\"hi\\"' in props["dx-js-1"]
    assert q(serving, "select count(*) > 0 from marts.kpi_daily") == [(True,)]
    # every check of the run is in data_quality_results, and none blocked
    assert q(serving, "select count(*) > 50, count(*) filter (where not passed and "
                      "severity = 'block') from marts.data_quality_results "
                      "where run_id = (select run_id from marts.ulm_publication)") == [(True, 0)]


BLOCKING_RUNS = {
    # defects that stop the run at the schema-drift check, all in one run
    "schema_drift": [d for d in DEFECTS if d["outcome"] == "block"
                     and d["file"].endswith((".csv", ".parquet"))
                     and d["file"] not in ("non_utf8.csv", "truncated.parquet")],
    # files that cannot be read stop the landing step: one run each
    "non_utf8": [d for d in DEFECTS if d["file"] == "non_utf8.csv"],
    "truncated": [d for d in DEFECTS if d["file"] == "truncated.parquet"],
}


@pytest.fixture(scope="module")
def blocked_world(small_world, tmp_path_factory):
    root = tmp_path_factory.mktemp("blocked")
    raw, warehouse = copy_world(small_world, root)
    return raw, warehouse, (warehouse / "serving.duckdb").read_bytes()


@pytest.mark.parametrize("run", sorted(BLOCKING_RUNS))
def test_blocking_defects_stop_the_run_with_a_clear_message(run, blocked_world, small_world,
                                                            tmp_path, capsys):
    clean_raw, warehouse, published = blocked_world
    raw = tmp_path / "raw"
    shutil.copytree(clean_raw, raw)
    defects = BLOCKING_RUNS[run]
    land_defects(raw, defects)
    capsys.readouterr()
    code = main(["run", "--raw-dir", str(raw), "--warehouse", str(warehouse),
                 "--as-of", small_world.as_of])
    out = capsys.readouterr().out
    assert code == 1 and "FAILED" in out and "serving.duckdb was not changed" in out
    for d in defects:
        for fragment in d["message"]:
            assert fragment in out, (d["file"], fragment, out[-3000:])
    assert (warehouse / "serving.duckdb").read_bytes() == published


def test_a_source_that_did_not_arrive_blocks_the_run(blocked_world, small_world, capsys):
    raw, warehouse, published = blocked_world
    # two days after the data ends: no events on the as-of day, newest events two days old
    import datetime as dt
    late = (dt.date.fromisoformat(small_world.as_of) + dt.timedelta(days=2)).isoformat()
    capsys.readouterr()
    code = main(["run", "--raw-dir", str(raw), "--warehouse", str(warehouse), "--as-of", late])
    out = capsys.readouterr().out
    assert code == 1
    assert "events_volume" in out and "events_freshness" in out
    assert "staging.stg_events" in out
    assert (warehouse / "serving.duckdb").read_bytes() == published
    failed = dict(q(warehouse / "work.duckdb", """
        select check_name, observed_value from marts.data_quality_results
        where not passed and as_of_date = ? and stage = 'ingest'""", [late]))
    assert "0 rows on" in failed["events_volume"]
