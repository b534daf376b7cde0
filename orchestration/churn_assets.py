"""Dagster assets for churn prediction: wiring only; the work is in ml/churn.py and
ml/registry.py. Tables go to the working database's `marts` schema and are published with
the rest."""

import base64
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from ml import churn, registry, reports
from orchestration.assets import RunDate, _model_key
from orchestration.dbt_args import resolve_as_of
from orchestration.resources import UlmSettings
from orchestration.tables import replace_table

SCORES_KEY = dg.AssetKey(["ml", "user_churn_scores"])
SCORES_COLUMNS = {"user_key": "varchar", "as_of_date": "date", "churn_probability": "double",
                  "churn_risk_tier": "varchar", "model_version": "varchar",
                  "top_reasons": "varchar"}
DRIFT_COLUMNS = {"as_of_date": "date", "feature": "varchar", "psi": "double",
                 "is_drifted": "boolean"}
METRICS_COLUMNS = "model_version VARCHAR, trained_at TIMESTAMP, as_of_date DATE, model " \
                  "VARCHAR, split VARCHAR, metric VARCHAR, value DOUBLE, promoted BOOLEAN"


def _models_root(ulm: UlmSettings) -> Path:
    return ulm.warehouse / "models" / "churn"


FEATURES_TABLE = "intermediate.int_churn_features"


def _read_features(ulm: UlmSettings, scoring_only: bool = False,
                   max_training_rows: int | None = None, seed: int = 0) -> pd.DataFrame:
    """The feature snapshots. With max_training_rows, rows of the training snapshots (all
    labelled snapshots but the newest two, see churn.time_split) are sampled in the database
    by a seeded hash of person and snapshot, to about 1.1x that many: at a million people the
    full training set is ~10M rows and would not fit in memory as a DataFrame, and
    train_models samples to max_training_rows anyway. Validation, test and scoring rows are
    read whole."""
    with ulm.connect_work(read_only=True) as con:
        if scoring_only:
            return con.execute(f"select * from {FEATURES_TABLE} where is_scoring_snapshot").df()
        where = ""
        dates = [d for (d,) in con.execute(
            f"select distinct snapshot_date from {FEATURES_TABLE} where label is not null "
            "order by 1").fetchall()]
        if max_training_rows and len(dates) >= 3:
            train = f"label is not null and snapshot_date < date '{dates[-2]}'"
            n_train = con.execute(f"select count(*) from {FEATURES_TABLE} where {train}"
                                  ).fetchone()[0]
            keep = min(1.0, 1.1 * max_training_rows / n_train) if n_train else 1.0
            if keep < 1.0:
                where = (f" where not ({train}) or hash(user_key, snapshot_date, {int(seed)}) "
                         f"% 1000000 < {int(keep * 1_000_000)}")
        return con.execute(f"select * from {FEATURES_TABLE}{where}").df()


def _write_metrics(ulm: UlmSettings, rows: pd.DataFrame) -> None:
    with ulm.connect_work() as con:
        con.execute(f"create table if not exists marts.churn_model_metrics ({METRICS_COLUMNS})")
        if not rows.empty:
            con.register("_rows", rows)
            con.execute("delete from marts.churn_model_metrics where model_version in "
                        "(select distinct model_version from _rows)")
            con.execute("insert into marts.churn_model_metrics by name select * from _rows")


@dg.asset(deps=[_model_key("int_churn_features")], group_name="churn",
          kinds={"python", "xgboost"})
def churn_model(context: dg.AssetExecutionContext, ulm: UlmSettings, config: RunDate):
    """Train (when needed), evaluate against two baselines on a time-based holdout, calibrate,
    register with a model card, and promote only if not worse than the current model."""
    cfg = ulm.load_config()
    as_of = resolve_as_of(config.as_of, cfg.business_timezone)
    c = cfg.churn
    root = _models_root(ulm)
    # the decision needs only today's snapshot: the training snapshots (2.4M rows read in
    # ~6 s at a million people) are read when the model is retrained
    scoring = _read_features(ulm, scoring_only=True)
    features = churn.feature_columns(scoring)
    state = registry.read_registry(root)
    current = registry.load(root, state["current"]) if state["current"] else None
    # a backfill of a date before the current model's: that model saw later data
    current_is_later = current is not None and current.card.as_of_date > as_of
    _write_metrics(ulm, pd.DataFrame())

    max_psi = None
    if current is not None:
        ref = pd.read_parquet(root / current.card.version / "reference.parquet")
        today, _ = churn.prepare_features(scoring, current.card.categories)
        if not today.empty:
            max_psi = max(churn.drift(ref, today, current.card.features).values(), default=0.0)
    retrain, why = registry.retrain_decision(current.card if current else None, as_of,
                                             c.max_model_age_days, max_psi, c.psi_warning,
                                             features)
    if not retrain:
        context.log.info(f"keeping churn model {current.card.version}: {why}")
        return dg.MaterializeResult(metadata={"model_version": current.card.version,
                                              "retrained": False, "reason": why})
    frame = _read_features(ulm, max_training_rows=c.max_training_rows, seed=c.seed)
    try:
        splits = churn.time_split(frame)
    except churn.InsufficientData as exc:
        context.log.warning(f"churn model not trained: {exc}")
        return dg.MaterializeResult(metadata={"retrained": False, "reason": str(exc)})

    params = {"learning_rate": c.learning_rate, "max_depth": c.max_depth,
              "subsample": c.subsample, "colsample_bytree": c.colsample_bytree,
              "min_child_weight": c.min_child_weight}
    # the version names what produced the model (data, settings, date), so re-running the
    # same as-of date finds the same model instead of minting a new one: runs stay idempotent
    fp = registry.fingerprint(splits.train)
    version = registry.version_id(as_of, fp, {**params, **c.model_dump()})
    if (root / version).is_dir():
        context.log.info(f"churn model {version} already trained from the same data")
        if current_is_later:
            # a backfill again: score with this date's model, not the later current one
            registry.record(root, version, True, "the current model was trained on data "
                                                 "after this run's date")
        return dg.MaterializeResult(metadata={"model_version": version, "retrained": False,
                                              "reason": "same data and settings as " + version})
    started = datetime.now(UTC)
    models = churn.train_models(splits, params, c.n_estimators, c.early_stopping_rounds,
                                c.max_training_rows, c.seed, c.early_stopping_min_delta)
    evaluation, test_predictions = churn.evaluate_all(models, splits)
    seconds = (datetime.now(UTC) - started).total_seconds()
    metrics = {}
    for m in evaluation:
        metrics.setdefault(m.model, {})[m.split] = m.values
    new_auc = metrics["xgboost"]["test"]["roc_auc"]
    current_auc = None
    if current is not None:
        p, _ = churn.booster_probabilities(current.booster, current.card.best_iteration,
                                           current.calibrator, current.card.categories,
                                           current.card.features, splits.test)
        current_auc = churn.evaluate(splits.test["label"].astype(bool).to_numpy().astype(int),
                                     p)["roc_auc"]
    promote, reason = registry.promotion_decision(
        new_auc, current_auc, c.promotion_max_auc_drop,
        current_saw_later_data=current_is_later)
    card = registry.ModelCard(
        version=version, trained_at=started.isoformat(timespec="seconds"), as_of_date=as_of,
        features=models.features, categories=models.categories,
        best_iteration=models.best_iteration,
        params={**params, "n_estimators": c.n_estimators,
                "early_stopping_rounds": c.early_stopping_rounds,
                "early_stopping_min_delta": c.early_stopping_min_delta, "seed": c.seed,
                "horizon_days": c.horizon_days},
        training_window={"train": splits.train_dates, "validation": splits.valid_date,
                         "test": splits.test_date},
        metrics=metrics, data_fingerprint=fp, training_rows=len(splits.train),
        libraries=registry.libraries())
    folder = registry.save(root, card, models.booster, models.calibrator)
    reference, _ = churn.prepare_features(
        churn.sample_training(splits.train, 20_000, c.seed), models.categories)
    reference.to_parquet(folder / "reference.parquet")
    registry.record(root, version, promote, reason)

    rows = pd.DataFrame([
        {"model_version": version, "trained_at": started.replace(tzinfo=None),
         "as_of_date": pd.Timestamp(as_of).date(), "model": m.model, "split": m.split,
         "metric": k, "value": v, "promoted": promote}
        for m in evaluation for k, v in m.values.items()])
    _write_metrics(ulm, rows)
    y = splits.test["label"].astype(bool).to_numpy().astype(int)
    importance = models.booster.get_score(importance_type="gain")
    png = reports.churn_model_plots(y, test_predictions, importance)
    test = {name: metrics[name]["test"] for name in metrics}
    table = ("| model | ROC-AUC | PR-AUC | lift top 10% | Brier | calib. error |\n"
             "|---|---|---|---|---|---|\n")
    table += "\n".join(
        f"| {n} | {t['roc_auc']:.3f} | {t['pr_auc']:.3f} | {t['lift_top_decile']:.2f} | "
        f"{t['brier']:.3f} | {t['calibration_error']:.3f} |" for n, t in test.items())
    context.log.info(f"churn model {version} trained ({why}) in {seconds:.1f}s on "
                     f"{len(splits.train):,} rows (test ROC-AUC {new_auc:.3f}): {reason}")
    return dg.MaterializeResult(metadata={
        "model_version": version, "retrained": True, "why_retrained": why,
        "promoted": promote, "promotion_reason": reason, "train_seconds": round(seconds, 1),
        "training_rows": len(splits.train), "test_snapshot": splits.test_date,
        "test_metrics": dg.MetadataValue.md(table),
        "plots": dg.MetadataValue.md(
            f"![churn model](data:image/png;base64,{base64.b64encode(png).decode()})"),
        "model_card": dg.MetadataValue.path(str(folder / "model_card.json")),
    })


@dg.asset(key=SCORES_KEY, deps=[churn_model], group_name="churn", kinds={"python"})
def user_churn_scores(context: dg.AssetExecutionContext, ulm: UlmSettings, config: RunDate):
    """Every person not churned on the as-of date: calibrated churn probability, risk tier,
    and the three features that push their risk up most, scored by the registry's current
    model version. Also the drift of every feature and of the score against training."""
    cfg = ulm.load_config()
    as_of = resolve_as_of(config.as_of, cfg.business_timezone)
    root = _models_root(ulm)
    state = registry.read_registry(root)
    today = _read_features(ulm, scoring_only=True)
    scores = pd.DataFrame({"user_key": pd.Series(dtype="string")})
    drift_rows = pd.DataFrame(columns=["feature", "psi"])
    version = state["current"]
    started = datetime.now(UTC)
    if version and not today.empty:
        model = registry.load(root, version)
        c = cfg.churn
        card = model.card
        # built once: the probabilities, the reasons and the drift all read it
        x = churn.model_matrix(card.categories, card.features, today)
        p = churn.matrix_probabilities(model.booster, card.best_iteration, model.calibrator, x)
        tiers = churn.risk_tiers(p, c.risk_tiers_by, c.high_risk_cutoff, c.medium_risk_cutoff)
        # exact reasons for the people a marketer will act on (high and medium risk)
        contribs = churn.matrix_contributions(model.booster, card.best_iteration, x,
                                              exact_for=tiers != "low")
        scores = pd.DataFrame({
            "user_key": today["user_key"],
            "as_of_date": pd.Timestamp(as_of).date(),
            "churn_probability": p,
            "churn_risk_tier": tiers,
            "model_version": version,
            "top_reasons": churn.reasons_from_contributions(contribs, card.features),
        })
        ref = pd.read_parquet(root / version / "reference.parquet")
        psi = churn.drift(ref, x, card.features)
        ref_p, _ = churn.booster_probabilities(
            model.booster, card.best_iteration, model.calibrator, card.categories,
            card.features, ref.assign(user_key="", snapshot_date=None,
                                      is_scoring_snapshot=False, label=None),
            with_contributions=False)
        psi["churn_probability"] = churn.population_stability(pd.Series(ref_p), pd.Series(p))
        drift_rows = pd.DataFrame({"feature": list(psi), "psi": list(psi.values())})
    elif not version:
        context.log.warning("no churn model in the registry yet: user_churn_scores is empty")
    drift = drift_rows.assign(as_of_date=pd.Timestamp(as_of).date(),
                              is_drifted=drift_rows["psi"].astype(float) > cfg.churn.psi_warning)
    with ulm.connect_work() as con:
        replace_table(con, "marts.user_churn_scores", scores, SCORES_COLUMNS)
        replace_table(con, "marts.churn_feature_drift", drift, DRIFT_COLUMNS)
    seconds = (datetime.now(UTC) - started).total_seconds()
    context.log.info(f"scored {len(scores):,} people in {seconds:.1f}s with model {version}")
    tiers = scores["churn_risk_tier"].value_counts().to_dict() if not scores.empty else {}
    max_psi = float(drift_rows["psi"].max()) if not drift_rows.empty else 0.0
    return dg.MaterializeResult(metadata={
        "model_version": version or "none", "scored": len(scores),
        "score_seconds": round(seconds, 2),
        "tiers": dg.MetadataValue.json({k: int(v) for k, v in tiers.items()}),
        "max_psi": max_psi,
        "mean_probability": float(np.mean(scores["churn_probability"])) if len(scores) else 0.0,
    })


@dg.asset_check(asset=SCORES_KEY, blocking=False)
def churn_drift_check(ulm: UlmSettings) -> dg.AssetCheckResult:
    """Warns when a feature or the score drifted (PSI above churn.psi_warning)."""
    cfg = ulm.load_config()
    with ulm.connect_work(read_only=True) as con:
        rows = con.execute("select feature, psi from marts.churn_feature_drift "
                           "order by psi desc").fetchall()
    drifted = [(f, p) for f, p in rows if p > cfg.churn.psi_warning]
    return dg.AssetCheckResult(
        passed=not drifted, severity=dg.AssetCheckSeverity.WARN,
        metadata={"drifted": len(drifted),
                  "worst": dg.MetadataValue.json({f: round(p, 4) for f, p in rows[:5]})})
