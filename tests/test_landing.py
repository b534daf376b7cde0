import gzip
import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestration.landing import (
    LandingError,
    file_format,
    land,
    pending_files,
    scan_raw_dir,
    unstaged_files,
)


def rows(work_db, sql):
    with duckdb.connect(str(work_db), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.fixture
def raw(tmp_path):
    root = tmp_path / "raw"
    (root / "events" / "dt=2026-03-01").mkdir(parents=True)
    return root


def test_pending_and_unstaged_file_versions():
    """A new file is pending; a rewritten file is pending and its staged version gone; a
    withdrawn file's staged version is gone; an unchanged file is neither."""
    files = [{"path": "new.csv", "mtime_ns": 5_000}, {"path": "rewritten.csv", "mtime_ns": 9_000},
             {"path": "same.csv", "mtime_ns": 2_000}]
    staged = {("rewritten.csv", 3), ("same.csv", 2), ("withdrawn.csv", 1)}
    assert [f["path"] for f in pending_files(files, staged)] == ["new.csv", "rewritten.csv"]
    assert unstaged_files(files, staged) == [("rewritten.csv", 3), ("withdrawn.csv", 1)]
    assert unstaged_files([], set()) == []


def test_formats_are_recognised():
    from pathlib import Path
    assert file_format(Path("a.CSV")) == "csv"
    assert file_format(Path("a.csv.gz")) == "csv"
    assert file_format(Path("a.jsonl.gz")) == "json"
    assert file_format(Path("a.ndjson")) == "json"
    assert file_format(Path("a.parquet")) == "parquet"
    assert file_format(Path("a.txt")) is None


def test_every_format_case_insensitive_columns_and_extras(raw, tmp_path):
    ev = raw / "events"
    (ev / "dt=2026-03-01" / "a.csv").write_text(
        "EVENT_ID,Event_Type,occurred_at,User_Id,utm_source\n"
        "e1,login,2026-03-01T10:00:00Z,u1,newsletter\n", encoding="utf-8")
    pq.write_table(pa.table({"event_id": ["e2"], "event_type": ["page_view"],
                             "occurred_at": ["2026-03-01T11:00:00Z"], "anonymous_id": ["a1"],
                             "properties": ['{"page": "home"}']}), ev / "b.parquet")
    with gzip.open(ev / "c.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"Event_Id": "e3", "event_type": "purchase", "amount": 9.5,
                             "occurred_at": "2026-03-01T12:00:00+08:00", "user_id": "u1",
                             "properties": {"plan": "monthly"}, "City": "上海"}) + "\n")
        fh.write("{this is not json\n")
    (ev / "empty.csv").write_bytes(b"")
    (ev / "header_only.csv").write_text("event_id,event_type\n")
    (ev / "notes.txt").write_text("not data")
    work = tmp_path / "work.duckdb"
    summary = land(work, raw, "k")
    assert summary["events"]["files"] == 5
    assert summary["events"]["rows"] == 4  # 1 csv + 1 parquet + 2 json lines
    assert summary["events"]["empty_files"] == 2
    assert summary["_skipped_files"]["files"] == 1
    assert summary["orders"]["files"] == 0  # absent source: no rows, no error
    got = {r[0]: r[1:] for r in rows(work, (
        "select coalesce(event_id, '?'), event_type, user_id, anonymous_id, amount, properties, "
        "_extra, _parse_error is not null from raw.events"))}
    assert got["e1"][:2] == ("login", "u1")
    assert json.loads(got["e1"][5]) == {"utm_source": "newsletter"}
    assert got["e2"][2] == "a1" and json.loads(got["e2"][4]) == {"page": "home"}
    assert got["e3"][3] == "9.5" and json.loads(got["e3"][4]) == {"plan": "monthly"}
    assert json.loads(got["e3"][5]) == {"city": "上海"}
    assert got["?"][6] is True  # the malformed JSON line is kept, flagged
    assert rows(work, "select count(*) from raw.orders") == [(0,)]
    inv = rows(work, "select count(*), sum(rows) from landing.file_inventory")
    assert inv == [(5, 4)]


def test_unreadable_file_stops_with_its_name(raw, tmp_path):
    bad = raw / "events" / "broken.parquet"
    bad.write_bytes(b"PAR1 this is not really parquet")
    with pytest.raises(LandingError) as err:
        land(tmp_path / "work.duckdb", raw, "k")
    assert "broken.parquet" in str(err.value)
    assert "events file" in str(err.value)


def test_non_utf8_csv_stops_with_the_reason_and_no_personal_data(raw, tmp_path):
    (raw / "customers").mkdir()
    (raw / "customers" / "latin1.csv").write_bytes(
        "user_id,updated_at,name\nu1,2026-01-01,Müller\n".encode("latin-1"))
    with pytest.raises(LandingError) as err:
        land(tmp_path / "work.duckdb", raw, "k")
    message = str(err.value)
    assert "customers file" in message and "latin1.csv" in message
    assert "not utf-8" in message.lower()
    assert "ller" not in message  # the offending row's text is not echoed


def test_missing_raw_dir_is_a_clear_error(tmp_path):
    with pytest.raises(LandingError, match="does not exist"):
        scan_raw_dir(tmp_path / "nope")


def test_counts_are_reused_for_unchanged_files(raw, tmp_path, monkeypatch):
    (raw / "events" / "a.csv").write_text("event_id,event_type\ne1,login\n")
    work = tmp_path / "work.duckdb"
    land(work, raw, "k")
    calls = []
    import orchestration.landing as landing

    real = landing.inspect_file
    monkeypatch.setattr(landing, "inspect_file",
                        lambda con, f: calls.append(f.path) or real(con, f))
    (raw / "events" / "b.csv").write_text("event_id,event_type\ne2,login\ne3,login\n")
    summary = land(work, raw, "k")
    assert summary["events"]["rows"] == 3
    assert [p.endswith("b.csv") for p in calls] == [True]


def test_inventory_reads_files_in_parallel_with_the_same_answers(raw, tmp_path, monkeypatch):
    """Each file is read once for its rows and its columns, several files at a time; the
    answers are those of one file at a time, in file order, and the first unreadable file in
    that order is the one named."""
    import orchestration.landing as landing

    ev, cu = raw / "events", raw / "customers"
    cu.mkdir()
    (cu / "a_two.csv").write_text("A,b\n1,2\n3,4\n")
    (cu / "b_header_only.csv").write_text("a,b\n")
    (cu / "c_quoted.csv").write_text('x,y\n"multi\nline",2\n')
    (ev / "a_mixed.jsonl").write_text(
        '{"b": 1, "É": 2}\n[1, 2]\n{bad\n\n   \n{"c": {"d": 1}}\n', encoding="utf-8")
    (ev / "b_blank.jsonl").write_text("\n\n")
    pq.write_table(pa.table({"n": [1, 2, 3], "s": ["x", "y", "z"]}), ev / "c.parquet")
    for i in range(8):  # enough files for every thread to read several
        (ev / f"d{i}.csv").write_text("event_id\n" + "".join(f"e{j}\n" for j in range(i)))
    files, _ = scan_raw_dir(raw)
    con = duckdb.connect()
    monkeypatch.setattr(landing, "INVENTORY_THREADS", 3)
    answers = dict(zip([f.path.rsplit("/", 1)[-1] for f in files],
                       landing.inspect_files(con, files), strict=True))
    assert answers["a_two.csv"] == (2, [["A", "VARCHAR"], ["b", "VARCHAR"]])
    assert answers["b_header_only.csv"] == (0, [["a", "VARCHAR"], ["b", "VARCHAR"]])
    assert answers["c_quoted.csv"] == (1, [["x", "VARCHAR"], ["y", "VARCHAR"]])
    # non-blank lines, malformed and non-object ones included; keys of the objects' top level
    assert answers["a_mixed.jsonl"] == (4, [["b", "VARCHAR"], ["c", "VARCHAR"],
                                            ["É", "VARCHAR"]])
    assert answers["b_blank.jsonl"] == (0, [])
    assert answers["c.parquet"] == (3, [["n", "BIGINT"], ["s", "VARCHAR"]])
    assert [answers[f"d{i}.csv"][0] for i in range(8)] == list(range(8))
    monkeypatch.setattr(landing, "INVENTORY_THREADS", 1)
    assert landing.inspect_files(con, files) == list(answers.values())

    monkeypatch.setattr(landing, "INVENTORY_THREADS", 3)
    (ev / "d3.parquet").write_bytes(b"PAR1 not parquet")
    (ev / "d6.parquet").write_bytes(b"PAR1 not parquet either")
    files, _ = scan_raw_dir(raw)
    with pytest.raises(LandingError, match="d3.parquet"):
        landing.inspect_files(con, files)


def test_long_reads_are_announced_first(raw, tmp_path, monkeypatch):
    """The landing says before it reads many new files (the run imports GX beside them), and
    not on a day of few: files read before do not count."""
    import orchestration.landing as landing

    monkeypatch.setattr(landing, "LONG_READ_FILES", 3)
    ev, work, calls = raw / "events", tmp_path / "work.duckdb", []
    for i in range(3):
        (ev / f"a{i}.csv").write_text("event_id\ne1\n")
    land(work, raw, "k", before_long_read=lambda: calls.append("long"))
    assert calls == ["long"]
    for i in range(2):
        (ev / f"b{i}.csv").write_text("event_id\ne1\n")
    summary = land(work, raw, "k", before_long_read=lambda: calls.append("long"))
    assert calls == ["long"] and summary["events"]["rows"] == 5
