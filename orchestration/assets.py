"""Dagster assets: wiring only. Landing (Python), dbt models, publish."""


import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, dbt_assets
from pydantic import Field

from expectations import results, runner
from ml import reports
from orchestration import dbt_in_process
from orchestration.config import dbt_vars
from orchestration.dbt_args import (
    build_threads,
    dbt_build_args,
    incremental_relations,
    resolve_as_of,
    summarize_failures,
)
from orchestration.landing import SOURCES, land
from orchestration.project import ulm_dbt_project
from orchestration.publish import publish_serving
from orchestration.resources import UlmSettings
from orchestration.tables import build_state, checkpoint_work

LANDING_TABLES = ["file_inventory", "pii_key"]


class RunDate(dg.Config):
    as_of: str = Field(
        "", description="Business date the run describes (YYYY-MM-DD). Empty: yesterday in the "
                        "business time zone.")
    full_refresh: bool = Field(
        False, description="dbt stages only: rebuild incremental models from every raw file "
                           "(dbt --full-refresh) instead of staging only new files.")


class UlmTranslator(DagsterDbtTranslator):
    """Groups by dbt folder (staging / intermediate / marts); sources keep the keys and
    groups of the landing asset that produces them."""

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project=None):
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props.get("resource_type") != "model":
            return spec
        layer = props["fqn"][1] if len(props["fqn"]) > 2 else "default"
        return spec.replace_attributes(group_name=layer, owners=["team:data-engineering"])


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["raw", source], group_name="raw",
                     description=f"The raw {source} files, as a view over every file in "
                                 f"RAW_DIR/{source}/.")
        for source in SOURCES
    ] + [
        dg.AssetSpec(["landing", table], group_name="raw",
                     description="Landing bookkeeping in the working database.")
        for table in LANDING_TABLES
    ],
)
def raw_landing(context: dg.AssetExecutionContext, ulm: UlmSettings):
    """Inventory the raw dir, check every new file can be read, and expose each source."""
    # the checks after the staging build need GX. When the landing has many new files to
    # read (a first run, a backfill), GX's import (~2 s of interpreter work) runs beside those
    # reads rather than inside the dbt build, where it counted as dbt's overhead over the SQL
    # floor; on a daily run the landing is too short to hold it, and it would run during
    # dbt's parse, which holds the interpreter as the import does (0.7-4.2 s slower a medium day)
    docs_dir = ulm.data_docs_dir(ulm.load_config())
    summary = land(ulm.work_db, ulm.raw_dir, ulm.pii_key,
                   before_long_read=lambda: runner.prepare_in_background(docs_dir))
    for source in SOURCES:
        s = summary[source]
        context.log.info(f"{source}: {s['files']} files, {s['rows']:,} rows")
        yield dg.MaterializeResult(
            asset_key=["raw", source],
            metadata={"files": s["files"], "empty_files": s["empty_files"],
                      "rows": s["rows"], "bytes": s["bytes"]},
        )
    yield dg.MaterializeResult(asset_key=["landing", "file_inventory"],
                               metadata={"files": sum(summary[s]["files"] for s in SOURCES),
                                         "skipped_files": summary["_skipped_files"]["files"]})
    yield dg.MaterializeResult(asset_key=["landing", "pii_key"])


def _dbt_build(context: dg.AssetExecutionContext, ulm: UlmSettings, config: "RunDate",
               after_staging: bool):
    cfg = ulm.load_config()
    as_of = resolve_as_of(config.as_of, cfg.business_timezone)
    # the staging build's log names the sources it wrote whole again; the staging stage
    # itself would read the log of an earlier run's
    missing, again = build_state(
        ulm.work_db, incremental_relations(
            json.loads(Path(ulm_dbt_project.manifest_path).read_text())),
        SOURCES if after_staging else [])
    threads, why = build_threads(cfg.engine.dbt_threads, cfg.engine.daily_dbt_threads,
                                 config.full_refresh, missing, again)
    context.log.info(f"dbt build as of {as_of} ({why}): {threads} models at a time")
    args = dbt_build_args(dbt_vars(cfg, as_of, ulm.warehouse, dbt_threads=threads),
                          full_refresh=config.full_refresh)
    try:
        invocation = dbt_in_process.build(
            args, context=context, project_dir=Path(ulm_dbt_project.project_dir),
            profiles_dir=Path(ulm_dbt_project.profiles_dir), target_path=ulm.dbt_target,
            # the checks after this build need GX: unless the landing began importing it,
            # import it while dbt's queries run (not during dbt's parse and start-up, which
            # hold the interpreter as the import does)
            on_executing=lambda: runner.prepare_in_background(ulm.data_docs_dir(cfg)))
    except dbt_in_process.DbtInProcessError as error:
        raise dg.Failure(description=str(error)) from None
    if invocation.timing is not None:
        context.log.info(invocation.timing.summary())
    yield from invocation.stream(context)
    _record_dbt_tests(context, ulm, as_of, invocation)
    if not invocation.is_successful():
        reason = ("" if invocation.exception is None
                  else f" ({type(invocation.exception).__name__}: {invocation.exception})")
        raise dg.Failure(
            description="dbt build failed" + reason + ": " + _failures(invocation),
        )


def _failures(invocation) -> str:
    if invocation.run_results is None:
        return "dbt stopped before running any model (see the dbt log above)."
    return summarize_failures(invocation.run_results)


def _record_dbt_tests(context, ulm: UlmSettings, as_of: str, invocation) -> None:
    """dbt tests sit beside the GX checks in data_quality_results."""
    if invocation.run_results is None:
        return  # dbt stopped before writing them; its failure is reported as the run's error
    stage = context.op.name.replace("ulm_dbt_", "")
    with ulm.connect_work() as con:
        results.record(con, context.run.run_id, as_of,
                       results.dbt_test_rows(invocation.run_results, invocation.manifest, stage))


AFTER_ML = "tag:after_ml"


def _dbt_stage(name: str, select: str, exclude: str | None, doc: str,
               after_staging: bool = True):
    """One dbt build per stage, so the checks between stages can stop the next one."""

    @dbt_assets(manifest=ulm_dbt_project.manifest_path, project=ulm_dbt_project,
                dagster_dbt_translator=UlmTranslator(), select=select, exclude=exclude,
                name=name)
    def _stage(context: dg.AssetExecutionContext, ulm: UlmSettings, config: RunDate):
        yield from _dbt_build(context, ulm, config, after_staging)

    _stage.__doc__ = doc
    return _stage


ulm_dbt_staging = _dbt_stage(
    "ulm_dbt_staging", "path:models/staging", None,
    "Staging: type, normalise, deduplicate and quarantine every raw source (and test it).",
    after_staging=False)
# identity, intermediate and marts are one stage: one dbt build (each build costs seconds of
# dbt start-up), checked as a whole before anything is trained or published; intermediate
# and mart models also refer to each other (lifecycle marts feed churn features)
ulm_dbt_models = _dbt_stage(
    "ulm_dbt_models", "path:models/intermediate path:models/marts", AFTER_ML,
    "Identity, intermediate and marts: the identity graph, events, orders, person-day "
    "activity, lifecycle, retention, KPIs, RFM, reasons, churn features, campaign effect, "
    "reconciliation.")
ulm_dbt_after_ml = _dbt_stage(
    "ulm_dbt_after_ml", AFTER_ML, None,
    "The dbt models that join the churn scores and CLV (dim_users).")
DBT_STAGES = [ulm_dbt_staging, ulm_dbt_models, ulm_dbt_after_ml]


def _mart_keys() -> list[dg.AssetKey]:
    return [key for defs in DBT_STAGES for key in defs.keys
            if defs.group_names_by_key.get(key) == "marts"]


def _model_key(name: str) -> dg.AssetKey:
    (key,) = [k for defs in DBT_STAGES for k in defs.keys if k.path[-1] == name]
    return key


REPORT_MARTS = ["cohort_retention", "lifecycle_daily", "lifecycle_transitions", "kpi_daily"]


def _image_md(title: str, png: bytes) -> str:
    return f"### {title}\n\n![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"


@dg.asset(deps=[_model_key(m) for m in REPORT_MARTS], group_name="reports")
def lifecycle_report(context: dg.AssetExecutionContext, ulm: UlmSettings):
    """Retention heatmap, lifecycle flow and KPI trend of this run, shown in the UI and saved
    as PNG files under WAREHOUSE/reports/."""
    with ulm.connect_work(read_only=True) as con:
        frames = {m: con.execute(f"select * from marts.{m}").df() for m in REPORT_MARTS}
    pictures = {
        "retention_heatmap": ("Weekly cohort retention",
                              reports.retention_heatmap(frames["cohort_retention"])),
        "lifecycle_flow": ("Lifecycle flow", reports.lifecycle_flow(
            frames["lifecycle_daily"], frames["lifecycle_transitions"])),
        "kpi_trend": ("KPI trend", reports.kpi_trend(frames["kpi_daily"])),
    }
    folder = ulm.warehouse / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    metadata: dict[str, Any] = {}
    for name, (title, png) in pictures.items():
        (folder / f"{name}.png").write_bytes(png)
        metadata[name] = dg.MetadataValue.md(_image_md(title, png))
        metadata[f"{name}_file"] = dg.MetadataValue.path(str(folder / f"{name}.png"))
    kpis = frames["kpi_daily"].sort_values("date")
    if not kpis.empty:
        last = kpis.iloc[-1]
        metadata["dau"] = int(last["dau"])
        metadata["mau"] = int(last["mau"])
        rate = last["churn_rate_monthly"]
        metadata["churn_rate_monthly"] = None if rate is None or rate != rate else float(rate)
    context.log.info(f"lifecycle pictures written to {folder}")
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(deps=[*_mart_keys(), dg.AssetKey(["ml", "user_churn_scores"]),
                dg.AssetKey(["churn_model"]), dg.AssetKey(["ml", "user_clv"]),
                dg.AssetKey(["ml", "winback_targets"]), dg.AssetKey(["clv_holdout_check"])],
          group_name="publish")
def serving_database(context: dg.AssetExecutionContext, ulm: UlmSettings, config: RunDate):
    """WAREHOUSE/serving.duckdb: the marts of a complete, validated run, swapped in atomically.
    Runs only when every upstream model and blocking check succeeded."""
    cfg = ulm.load_config()
    as_of = resolve_as_of(config.as_of, cfg.business_timezone)
    pub = publish_serving(ulm.work_db, ulm.serving_db, as_of, context.run_id)
    checkpoint_work(ulm.work_db)  # the run's small writes, left in the log, into the file
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(pub.path)),
            "as_of_date": as_of,
            "tables": dg.MetadataValue.md(
                "| table | rows |\n|---|---|\n"
                + "\n".join(f"| {t} | {n:,} |" for t, n in sorted(pub.tables.items()))),
        }
    )
