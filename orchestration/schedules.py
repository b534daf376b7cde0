"""The daily job and its schedule: every morning, run the pipeline as of yesterday."""


import os
from datetime import timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from orchestration.config import load_config

daily_job = dg.define_asset_job(
    "ulm_daily",
    selection=dg.AssetSelection.all(),
    description="Land the raw files, build and test every dbt model, train and score, check "
                "between every stage, publish serving.duckdb.",
    executor_def=dg.in_process_executor,
)

RUN_DATE_OPS = ("ulm_dbt_staging", "ulm_dbt_models", "churn_model",
                "ml__user_churn_scores", "ml__user_clv", "clv_holdout_check",
                "ml__winback_targets", "ulm_dbt_after_ml", "serving_database")


def run_config_for(as_of: str) -> dict:
    """Run config that pins every op that needs it to the same business date."""
    return {"ops": {op: {"config": {"as_of": as_of}} for op in RUN_DATE_OPS}}


@dg.schedule(name="ulm_daily_schedule", job=daily_job, cron_schedule="0 3 * * *",
             execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED)
def daily_schedule(context: dg.ScheduleEvaluationContext):
    """03:00 UTC: yesterday's business date (in the configured business time zone)."""
    config = load_config(os.environ.get("ULM_CONFIG") or None)
    local = context.scheduled_execution_time.astimezone(ZoneInfo(config.business_timezone))
    as_of = (local.date() - timedelta(days=1)).isoformat()
    return dg.RunRequest(run_key=as_of, run_config=run_config_for(as_of), tags={"as_of": as_of})
