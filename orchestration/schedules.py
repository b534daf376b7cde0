"""The daily job, its partitions and its schedule: every morning, run the pipeline as of
yesterday; any past day (or range of days) can be run again as a partition backfill."""


import os
from datetime import timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from orchestration.config import load_config
from orchestration.dbt_args import DBT_STAGE_OPS

RUN_DATE_OPS = ("ulm_dbt_staging", "ulm_dbt_models", "churn_model",
                "ml__user_churn_scores", "ml__user_clv", "clv_holdout_check",
                "ml__winback_targets", "ulm_dbt_after_ml", "serving_database")


def run_config_for(as_of: str, full_refresh: bool = False) -> dict:
    """Run config that pins every op that needs it to the same business date."""
    ops = {op: {"config": {"as_of": as_of}} for op in RUN_DATE_OPS}
    if full_refresh:
        for op in DBT_STAGE_OPS:
            ops[op]["config"]["full_refresh"] = True
    return {"ops": ops}


def daily_partitions() -> dg.DailyPartitionsDefinition:
    """One partition per business date (in the business time zone), from
    `schedule.partitions_start_date` to yesterday. A partition is a whole run as of that
    date: every model describes the business on that day, built from all history."""
    config = load_config(os.environ.get("ULM_CONFIG") or None)
    return dg.DailyPartitionsDefinition(start_date=config.schedule.partitions_start_date,
                                        timezone=config.business_timezone)


partitioned_run_config = dg.PartitionedConfig(
    partitions_def=daily_partitions(),
    run_config_for_partition_key_fn=run_config_for,
    tags_for_partition_key_fn=lambda key: {"as_of": key},
)

daily_job = dg.define_asset_job(
    "ulm_daily",
    selection=dg.AssetSelection.all(),
    description="Land the raw files, build and test every dbt model, train and score, check "
                "between every stage, publish serving.duckdb. One partition per business "
                "date: backfill a range from the job's Partitions tab (runs go one at a time).",
    config=partitioned_run_config,
    executor_def=dg.in_process_executor,
)


@dg.schedule(name="ulm_daily_schedule", job=daily_job, cron_schedule="0 3 * * *",
             execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED)
def daily_schedule(context: dg.ScheduleEvaluationContext):
    """03:00 UTC: yesterday's business date (in the configured business time zone)."""
    config = load_config(os.environ.get("ULM_CONFIG") or None)
    local = context.scheduled_execution_time.astimezone(ZoneInfo(config.business_timezone))
    as_of = (local.date() - timedelta(days=1)).isoformat()
    return dg.RunRequest(run_key=as_of, partition_key=as_of, tags={"as_of": as_of})
