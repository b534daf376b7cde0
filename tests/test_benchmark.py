"""The benchmark's bookkeeping: stages from Dagster steps, the SQL floor's build order, and
memory read from /proc (the real measurement runs with `ulm benchmark`)."""

import os
import subprocess
import sys

import duckdb
import pytest

from orchestration.benchmark import (
    STAGES,
    BenchmarkResult,
    StepTiming,
    build_order,
    connected_components_rounds,
    dbt_stage_of,
    floor_plan,
    format_table,
    run_floor,
    stage_table,
    tree_rss,
)


def test_steps_group_into_stages_and_identity_moves_out_of_the_model_build():
    steps = [StepTiming("raw_landing", 0, 2), StepTiming("ulm_dbt_staging", 2, 12),
             StepTiming("staging__stg_events_gx_stg_events", 12, 13),
             StepTiming("ulm_dbt_models", 13, 33), StepTiming("churn_model", 33, 40),
             StepTiming("serving_database", 40, 41)]
    peaks = {(0, 2): 100, (2, 12): 900, (12, 13): 300, (13, 33): 700, (33, 40): 400,
             (40, 41): 50, (15, 19): 650}
    stages = {s.name: s for s in stage_table(steps, [(15, 19)], lambda a, b: peaks[(a, b)])}
    assert list(stages) == STAGES
    assert stages["ingest"].seconds == 12 and stages["ingest"].peak_bytes == 900
    assert stages["identity"].seconds == 4 and stages["identity"].peak_bytes == 650
    assert stages["lifecycle marts"].seconds == 16  # 20 s build less 4 s of identity models
    assert stages["checks"].seconds == 1 and stages["checks"].steps == 1
    assert stages["churn train"].seconds == 7 and stages["publish"].seconds == 1
    assert sum(s.seconds for s in stages.values()) == 41


def test_floor_runs_models_after_what_they_read_and_counts_tests_with_their_model(tmp_path):
    nodes = {
        "model.ulm.b": {"resource_type": "model", "depends_on": {"nodes": ["model.ulm.a"]},
                        "relation_name": "main.b", "config": {"materialized": "table"},
                        "compiled_code": "select x + 1 as x from main.a", "tags": [],
                        "original_file_path": "models/marts/b.sql"},
        "model.ulm.a": {"resource_type": "model", "depends_on": {"nodes": []},
                        "relation_name": "main.a", "config": {"materialized": "table"},
                        "compiled_code": "select 1 as x", "tags": [],
                        "original_file_path": "models/staging/a.sql"},
        "test.ulm.b_positive": {"resource_type": "test", "depends_on": {"nodes": ["model.ulm.b"]},
                                "attached_node": "model.ulm.b", "config": {},
                                "compiled_code": "select * from main.b where x <= 0"},
        "test.ulm.a_positive": {"resource_type": "test", "depends_on": {"nodes": ["model.ulm.a"]},
                                "attached_node": "model.ulm.a", "config": {},
                                "compiled_code": "select * from main.a where x <= 0"},
    }
    assert build_order(nodes) == ["model.ulm.a", "model.ulm.b", "test.ulm.a_positive",
                                  "test.ulm.b_positive"]
    assert dbt_stage_of(nodes["model.ulm.a"]) == "ulm_dbt_staging"
    assert dbt_stage_of(nodes["model.ulm.b"]) == "ulm_dbt_models"
    # stage by stage, as the pipeline builds them: a's test before b
    assert floor_plan(nodes) == {"ulm_dbt_staging": ["model.ulm.a", "test.ulm.a_positive"],
                                 "ulm_dbt_models": ["model.ulm.b", "test.ulm.b_positive"],
                                 "ulm_dbt_after_ml": []}
    times = run_floor({"nodes": nodes}, tmp_path / "work.duckdb", "500MB")
    assert set(times.seconds) == {"ulm_dbt_staging", "ulm_dbt_models", "ulm_dbt_after_ml"}
    # each stage's time holds the checkpoint that ends it
    assert all(0 < times.checkpoint_seconds[s] <= times.seconds[s] for s in times.seconds)
    with duckdb.connect(str(tmp_path / "work.duckdb")) as con:
        assert con.execute("select x from main.b").fetchall() == [(2,)]


def test_floor_ranks_redeliveries_as_the_models_hook_does(tmp_path):
    """The floor runs the redelivery ranking that stg_events__all's after-commit hook runs
    (its select writes rank 1 for every valid row): copies of an id ranked by file, then
    row; a rejected row keeps no rank."""
    hook = "{{ rank_redeliveries('event_id', 'delivery_rank', '_file, _row') }}"
    select = ("select * from (values ('e1', 'b.csv', 1, null), ('e1', 'a.csv', 7, null), "
              "('e2', 'a.csv', 2, null), ('e1', 'a.csv', 3, null), "
              "('e3', 'a.csv', 4, 'missing_event_type'), ('e3', 'a.csv', 5, null)) "
              "as t(event_id, _file, _row, reject_reason)")
    nodes = {"model.ulm.stg_events__all": {
        "resource_type": "model", "depends_on": {"nodes": []}, "tags": [],
        "relation_name": "main.stg_events__all", "original_file_path": "models/staging/x.sql",
        "config": {"materialized": "incremental",
                   "post-hook": [{"sql": "{{ log_staging_build('events') }}"},
                                 {"sql": hook, "transaction": False}]},
        "compiled_code": "select *, case when reject_reason is null then 1 end "
                         f"as delivery_rank, 'run-1' as _staging_run from ({select}) s"}}
    run_floor({"nodes": nodes}, tmp_path / "work.duckdb", "500MB")
    with duckdb.connect(str(tmp_path / "work.duckdb")) as con:
        ranks = con.execute("select event_id, _file, _row, delivery_rank, _staging_run "
                            "from main.stg_events__all order by all").fetchall()
    assert ranks == [("e1", "a.csv", 3, 1, "run-1"), ("e1", "a.csv", 7, 2, "run-1"),
                     ("e1", "b.csv", 1, 3, "run-1"), ("e2", "a.csv", 2, 1, "run-1"),
                     ("e3", "a.csv", 4, None, "run-1"), ("e3", "a.csv", 5, 1, "run-1")]


def test_floor_label_propagation_finds_the_components(tmp_path):
    with duckdb.connect(str(tmp_path / "g.duckdb")) as con:
        con.execute("create table nodes as select unnest(range(1, 7)) as node_id")
        con.execute("create table edges as select * from (values (1, 2), (2, 3), (5, 4), "
                    "(3, 3)) as e(src, dst)")
        rounds = connected_components_rounds(con, "select node_id from nodes",
                                             "select src, dst from edges")
        labels = dict(con.execute("select node_id, label from identity_work.cc_labels")
                      .fetchall())
    assert labels == {1: 1, 2: 1, 3: 1, 4: 4, 5: 4, 6: 6}
    assert 1 <= rounds <= 3


def test_tree_rss_counts_child_processes():
    alone = tree_rss(os.getpid())
    # the child says when its 200 MB are resident, then waits to be killed
    child = subprocess.Popen(
        [sys.executable, "-c", "b = bytearray(200_000_000); print('ready', flush=True); "
                               "import time; time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        assert tree_rss(os.getpid()) > alone + 150_000_000
    finally:
        child.kill()
        child.wait()


def test_table_prints_every_stage_and_the_overhead():
    r = BenchmarkResult("demo", 10, 30, 1000, 1.0, 1000.0, 60.0, 50.0, 1.0, 2_000_000_000, True,
                        stages=stage_table([StepTiming("ulm_dbt_staging", 0, 10)], [],
                                           lambda a, b: 10**9),
                        dbt_step_seconds={"ulm_dbt_staging": 10.0},
                        floor_seconds={"ulm_dbt_staging": 8.0},
                        floor_checkpoint_seconds={"ulm_dbt_staging": 0.5}, memory_limit="1GB")
    text = format_table(r)
    assert all(stage in text for stage in STAGES)
    assert "0.5 s of it the checkpoints" in text
    assert "+25%" in text and r.dbt_overhead == 0.25
    assert r.as_json()["dbt_overhead"] == 0.25


def test_in_run_overhead_is_over_the_builds_own_statements_and_close():
    """A dbt step logs its build's summary; read back, it sets dbt's own work apart from the
    statements it ran, measured in the same run."""
    from orchestration.dbt_in_process import BuildTiming, parse_build_summary

    timing = BuildTiming(nodes=153, statements=641, build_seconds=41.32, sql_seconds=37.05,
                         close_seconds=2.59)
    assert parse_build_summary("step says: " + timing.summary()) == timing
    assert parse_build_summary("dbt build as of 2026-03-01") is None
    r = BenchmarkResult("medium", 10, 30, 1000, 1.0, 1000.0, 60.0, 50.0, 1.0, 2_000_000_000,
                        True, dbt_step_seconds={"ulm_dbt_staging": 10.0, "ulm_dbt_models": 30.0},
                        dbt_sql_seconds={"ulm_dbt_staging": 7.0, "ulm_dbt_models": 22.0},
                        dbt_close_seconds={"ulm_dbt_staging": 1.0, "ulm_dbt_models": 2.0})
    assert r.dbt_overhead_in_run == 40.0 / 32.0 - 1  # +25%
    text = format_table(r)
    assert "+25%" in text and "statements s" in text
    assert r.as_json()["dbt_overhead_in_run"] == 0.25


def test_a_floor_without_room_is_reported_not_raised(tmp_path, monkeypatch):
    """Too little disk for the floor's copy (a large benchmark filled the disk once, and the
    benchmark stopped with a traceback, its pipeline figures lost): the floor is skipped
    with the reason, its folder removed, and the table says why."""
    import shutil

    from orchestration import benchmark
    from orchestration.config import UlmConfig

    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    duckdb.connect(str(warehouse / "work.duckdb")).close()
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(benchmark.shutil, "disk_usage",
                        lambda path: usage._replace(free=1_000))
    r = BenchmarkResult("demo", 10, 30, 1000, 1.0, 1000.0, 60.0, 50.0, 1.0, 2_000_000_000, True)
    with pytest.raises(benchmark.FloorError, match="^0.00 GB free in .*--no-floor"):
        benchmark.floor_result(r, warehouse, tmp_path / "floor", UlmConfig(), "2026-03-01")
    assert not (tmp_path / "floor").exists() and not r.floor_seconds
    r.floor_error = "0.00 GB free"
    assert "SQL floor not measured: 0.00 GB free" in format_table(r)


def test_next_day_is_the_last_day_moved_one_day_later_under_new_ids(tmp_path):
    from orchestration.benchmark import NEXT_DAY_DIR, add_next_day, remove_next_day
    from orchestration.generator import GeneratorSettings, generate

    settings = GeneratorSettings(users=150, days=40, seed=2, chunk_users=150)
    generate(tmp_path, settings)
    raw = tmp_path / "raw"
    rows = add_next_day(raw, settings.end_date, "2026-11-22")
    events = raw / "events" / NEXT_DAY_DIR / "events-2026-11-22.parquet"
    got = duckdb.sql(f"SELECT count(*), min(CAST(occurred_at AS DATE)), "
                     f"max(CAST(occurred_at AS DATE)), bool_and(event_id LIKE '%-next') "
                     f"FROM read_parquet('{events}')").fetchall()[0]
    assert got[0] > 0 and str(got[1]) == str(got[2]) == "2026-11-22" and got[3]
    assert rows >= got[0]
    remove_next_day(raw)
    assert not (raw / "events" / NEXT_DAY_DIR).exists()


def test_reused_data_loses_the_next_day_an_interrupted_run_left(tmp_path):
    """A benchmark stopped during its next day leaves that day's files in the raw dir; the
    next run that reuses the data must not land them in its full run."""
    from orchestration.benchmark import NEXT_DAY_DIR, add_next_day, benchmark_data
    from orchestration.generator import GeneratorSettings

    settings = GeneratorSettings(users=120, days=30, seed=3, chunk_users=120)
    events, _ = benchmark_data(tmp_path, settings, reuse_data=True, say=lambda _: None)
    raw = tmp_path / "raw"
    add_next_day(raw, settings.end_date, "2026-11-22")
    assert (raw / "events" / NEXT_DAY_DIR).exists()
    said = []
    again, _ = benchmark_data(tmp_path, settings, reuse_data=True, say=said.append)
    assert said == [f"reusing generated data in {tmp_path}"] and again == events
    assert not any((raw / source / NEXT_DAY_DIR).exists()
                   for source in ("events", "orders", "customers"))
