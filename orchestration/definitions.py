"""The ULM code location. Import needs target/manifest.json: `ulm` prepares it first."""

from __future__ import annotations

import dagster as dg

from orchestration.assets import DBT_STAGES, lifecycle_report, raw_landing, serving_database
from orchestration.churn_assets import churn_drift_check, churn_model, user_churn_scores
from orchestration.gc_settings import settle_long_lived_objects
from orchestration.quality_checks import all_checks
from orchestration.resources import UlmSettings
from orchestration.schedules import daily_job, daily_schedule
from orchestration.value_assets import clv_holdout_check, user_clv, winback_targets


def build_resources(ulm: UlmSettings | None = None) -> dict:
    """Resources for a deployment: from environment variables (read at run time) unless
    given explicitly (the `ulm run` command and tests do)."""
    return {
        "ulm": ulm or UlmSettings(
            raw_dir=dg.EnvVar("ULM_RAW_DIR"),
            warehouse_dir=dg.EnvVar("ULM_WAREHOUSE"),
            config_path=dg.EnvVar("ULM_CONFIG"),
            pii_key=dg.EnvVar("ULM_PII_KEY"),
        ),
    }


defs = dg.Definitions(
    assets=[raw_landing, *DBT_STAGES, churn_model, user_churn_scores, user_clv,
            clv_holdout_check, winback_targets, serving_database, lifecycle_report],
    asset_checks=[churn_drift_check, *all_checks()],
    jobs=[daily_job],
    schedules=[daily_schedule],
    resources=build_resources(),
    # one writer: DuckDB allows one process to write the working database, so steps run one
    # after another in the run's process (also for materialisations launched from the UI)
    executor=dg.in_process_executor,
)

# the process that loads these definitions runs the pipeline (`ulm run`, a run launched from
# the UI or the schedule) or serves them: what it holds now lives as long as it does
settle_long_lived_objects()
