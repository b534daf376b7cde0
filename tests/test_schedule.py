from datetime import UTC, datetime

import dagster as dg

from orchestration.schedules import RUN_DATE_OPS


def test_daily_schedule_runs_yesterday_for_every_op(monkeypatch, tmp_path):
    from orchestration.definitions import defs

    config = tmp_path / "ulm.yaml"
    config.write_text("business_timezone: Asia/Shanghai\n")
    monkeypatch.setenv("ULM_CONFIG", str(config))
    schedule = defs.get_schedule_def("ulm_daily_schedule")
    # 03:00 UTC on 2 March is 11:00 on 2 March in Shanghai: yesterday there is 1 March
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 3, 2, 3, 0, tzinfo=UTC))
    request = schedule(context)
    assert request.run_key == "2026-03-01"
    ops = request.run_config["ops"]
    assert set(ops) == set(RUN_DATE_OPS)
    assert {op["config"]["as_of"] for op in ops.values()} == {"2026-03-01"}
    job = defs.resolve_job_def("ulm_daily")
    job_ops = {node.name for node in job.graph.node_defs}
    assert set(RUN_DATE_OPS) <= job_ops  # every op the schedule configures exists
