from datetime import UTC, datetime

import dagster as dg

from orchestration.dbt_args import DBT_STAGE_OPS
from orchestration.schedules import RUN_DATE_OPS, run_config_for


def test_daily_schedule_runs_yesterday_as_a_partition_for_every_op(monkeypatch, tmp_path):
    from orchestration.definitions import defs

    config = tmp_path / "ulm.yaml"
    config.write_text("business_timezone: Asia/Shanghai\n")
    monkeypatch.setenv("ULM_CONFIG", str(config))
    schedule = defs.get_schedule_def("ulm_daily_schedule")
    # 03:00 UTC on 2 March is 11:00 on 2 March in Shanghai: yesterday there is 1 March
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 3, 2, 3, 0, tzinfo=UTC))
    request = schedule(context)
    assert request.run_key == request.partition_key == "2026-03-01"
    assert request.tags["as_of"] == "2026-03-01"

    job = defs.resolve_job_def("ulm_daily")
    # the partition's run config pins every op to that date
    ops = job.partitioned_config.get_run_config_for_partition_key("2026-03-01")["ops"]
    assert set(ops) == set(RUN_DATE_OPS)
    assert {op["config"]["as_of"] for op in ops.values()} == {"2026-03-01"}
    assert job.partitioned_config.get_tags_for_partition_key("2026-03-01")["as_of"] == \
        "2026-03-01"
    job_ops = {node.name for node in job.graph.node_defs}
    assert set(RUN_DATE_OPS) <= job_ops  # every op the schedule configures exists
    keys = job.partitions_def.get_partition_keys()
    assert keys[0] == "2025-01-01" and "2026-03-01" in keys


def test_full_refresh_reaches_only_the_dbt_stages():
    ops = run_config_for("2026-03-01", full_refresh=True)["ops"]
    assert {op for op, c in ops.items() if c["config"].get("full_refresh")} == set(DBT_STAGE_OPS)
    assert not any("full_refresh" in c["config"]
                   for c in run_config_for("2026-03-01")["ops"].values())
