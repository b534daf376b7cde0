"""Churn functions on hand-made frames with known answers (ml/churn.py, ml/registry.py)."""

import json

import numpy as np
import pandas as pd
import pytest

from ml import churn, registry

PARAMS = {"learning_rate": 0.1, "max_depth": 3, "subsample": 1.0, "colsample_bytree": 1.0,
          "min_child_weight": 1.0}


def synthetic(snapshots: int = 6, per_snapshot: int = 400, seed: int = 0) -> pd.DataFrame:
    """Risk rises with idle days and support tickets; an interaction (tickets only matter
    for low-spend people) that a linear model cannot express."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(snapshots):
        n = per_snapshot
        idle = rng.integers(0, 60, n)
        tickets = rng.poisson(0.5, n)
        spend = rng.gamma(2.0, 20.0, n)
        logit = -3 + 0.06 * idle + np.where(spend < 30, 1.2 * tickets, 0.0)
        label = rng.random(n) < 1 / (1 + np.exp(-logit))
        frames.append(pd.DataFrame({
            "user_key": [f"p{k}-{i}" for i in range(n)],
            "snapshot_date": pd.Timestamp("2026-01-01") + pd.Timedelta(days=14 * k),
            "is_scoring_snapshot": False,
            "label": label,
            "days_since_active": idle,
            "support_tickets_90": tickets,
            "spend_90": spend,
            "lifecycle_stage": np.where(idle >= 14, "dormant", "active"),
            "country": rng.choice(["US", "CN", "DE"], n),
        }))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def trained():
    frame = synthetic()
    splits = churn.time_split(frame)
    models = churn.train_models(splits, PARAMS, 300, 20, 100_000, seed=1)
    return frame, splits, models


def test_time_split_never_mixes_time():
    frame = synthetic(snapshots=5)
    frame["label"] = frame["label"].astype(object)
    frame.loc[frame["snapshot_date"] == frame["snapshot_date"].max(), "label"] = None
    splits = churn.time_split(frame)
    dates = sorted(frame["snapshot_date"].unique())
    assert set(splits.test["snapshot_date"]) == {dates[-2]}  # newest labelled
    assert set(splits.valid["snapshot_date"]) == {dates[-3]}
    assert splits.train["snapshot_date"].max() < splits.valid["snapshot_date"].min()
    assert splits.test["label"].notna().all()


def test_too_little_history_is_a_clear_error():
    with pytest.raises(churn.InsufficientData, match="at least 3 labelled snapshots"):
        churn.time_split(synthetic(snapshots=2))
    one_class = synthetic(snapshots=4).assign(label=False)
    with pytest.raises(churn.InsufficientData, match="one class"):
        churn.time_split(one_class)


def test_xgboost_beats_both_baselines_on_a_nonlinear_signal(trained):
    _, splits, models = trained
    metrics, predictions = churn.evaluate_all(models, splits)
    test = {m.model: m.values for m in metrics if m.split == "test"}
    assert set(predictions) == set(test)
    assert test["xgboost"]["roc_auc"] > test["recency_baseline"]["roc_auc"] + 0.03
    assert test["xgboost"]["roc_auc"] >= test["logistic_baseline"]["roc_auc"]
    assert test["xgboost"]["calibration_error"] < 0.08


def test_early_stopping_keeps_trees_up_to_the_last_gain_above_the_tolerance(trained):
    _, splits, exact = trained
    # no gain is ever above 1.0: training stops 20 rounds in and keeps the first tree
    first_only = churn.train_models(splits, PARAMS, 300, 20, 100_000, seed=1, min_delta=1.0)
    assert first_only.best_iteration == 0
    assert first_only.booster.num_boosted_rounds() == 21
    some = churn.train_models(splits, PARAMS, 300, 20, 100_000, seed=1, min_delta=0.02)
    assert 0 < some.best_iteration < exact.best_iteration
    # the kept trees are the same trees as without a tolerance: only where it stops differs
    first = (0, some.best_iteration + 1)
    x, _ = churn.prepare_features(splits.test, exact.categories)
    assert np.allclose(exact.booster.predict(churn._dmatrix(x), iteration_range=first),
                       some.booster.predict(churn._dmatrix(x), iteration_range=first))


def test_metrics_with_hand_computed_answers():
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    p = np.array([0.9, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2])
    precision, recall, lift = churn.top_decile(y, p)
    assert (precision, recall, lift) == (1.0, 0.5, 5.0)  # top 1 of 10 is a churner
    assert churn.calibration_error(np.array([0, 1, 0, 1]), np.full(4, 0.5)) == 0.0
    assert churn.calibration_error(np.array([1, 1]), np.array([0.25, 0.25])) == 0.75
    m = churn.evaluate(y, p)
    assert m["roc_auc"] == pytest.approx(15 / 16)  # 0.2 loses only to the 0.8 negative
    assert m["base_rate"] == 0.2


def test_risk_tiers_by_probability_and_by_share():
    p = np.array([0.9, 0.6, 0.3, 0.1, 0.05])
    assert churn.risk_tiers(p, "probability", 0.5, 0.2).tolist() == [
        "high", "high", "medium", "low", "low"]
    assert churn.risk_tiers(p, "share", 0.2, 0.4).tolist() == [
        "high", "medium", "medium", "low", "low"]


def test_population_stability():
    rng = np.random.default_rng(0)
    a = pd.Series(rng.normal(0, 1, 5000))
    assert churn.population_stability(a, pd.Series(rng.normal(0, 1, 5000))) < 0.02
    assert churn.population_stability(a, pd.Series(rng.normal(1, 1, 5000))) > 0.2
    cats = pd.Series(["a"] * 90 + ["b"] * 10)
    assert churn.population_stability(cats, pd.Series(["a"] * 50 + ["b"] * 50)) > 0.2


def test_population_stability_bins_close_on_the_right_and_count_missing_values():
    # two bins of the training values, split at their median 2.5: (-inf, 2.5] and (2.5, inf)
    expected = pd.Series([1.0, 2.0, 3.0, 4.0])
    actual = pd.Series([1.0, 1.0, 2.5, 5.0, None])  # 2.5 falls in the lower bin
    e, a = np.array([0.5, 0.5, 1e-4]), np.array([0.6, 0.2, 0.2])  # lower, upper, missing
    assert churn.population_stability(expected, actual, bins=2) == pytest.approx(
        float(((a - e) * np.log(a / e)).sum()))
    assert churn.population_stability(pd.Series([np.nan, np.nan]), actual) == 0.0
    assert churn.population_stability(pd.Series([3.0, 3.0]), actual) == 0.0


def test_scoring_reuses_training_categories(trained):
    frame, _, models = trained
    new = frame.head(3).assign(country=["BR", "US", None])  # BR never seen in training
    x, cats = churn.prepare_features(new, models.categories)
    assert cats["country"] == models.categories["country"]
    assert x["country"].isna().tolist() == [True, False, True]


def test_top_reasons_name_what_pushes_risk_up(trained):
    frame, _, models = trained
    idle = frame.assign(days_since_active=59, support_tickets_90=0, spend_90=100.0).head(5)
    reasons = churn.top_reasons(models, idle)
    assert all(r.split("; ")[0] == churn.REASON_TEXT["days_since_active"] for r in reasons)


def test_reasons_are_the_largest_positive_contributions_in_words():
    features = ["days_since_active", "spend_90", "support_tickets_90", "custom_feature"]
    contribs = np.array([
        [0.5, 0.1, 0.9, 0.3],     # tickets, idle, custom (largest first; top three only)
        [-0.2, 0.4, -0.1, 0.0],   # only spend pushes risk up
        [-0.1, -0.2, -0.3, -0.4],  # nothing does
        [0.5, 0.1, 0.9, 0.3],     # the same choice as the first row
        [0.2, 0.2, 0.0, 0.1],     # a tie: feature order
    ])
    text = churn.REASON_TEXT
    assert churn.reasons_from_contributions(contribs, features) == [
        f"{text['support_tickets_90']}; {text['days_since_active']}; custom_feature",
        text["spend_90"],
        "",
        f"{text['support_tickets_90']}; {text['days_since_active']}; custom_feature",
        f"{text['days_since_active']}; {text['spend_90']}; custom_feature",
    ]
    assert churn.reasons_from_contributions(contribs, features, k=1)[1] == text["spend_90"]
    assert churn.reasons_from_contributions(np.zeros((0, 4)), features) == []


def test_registry_round_trip_and_scoring_by_recorded_version(trained, tmp_path):
    frame, splits, models = trained
    fp = registry.fingerprint(splits.train)
    assert fp == registry.fingerprint(splits.train.sample(frac=1.0, random_state=3))

    def card(version):
        return registry.ModelCard(
            version=version, trained_at="2026-03-01T00:00:00", as_of_date="2026-03-01",
            features=models.features, categories=models.categories,
            best_iteration=models.best_iteration, params=PARAMS, training_window={},
            metrics={}, data_fingerprint=fp, training_rows=len(splits.train))

    registry.save(tmp_path, card("v-old"), models.booster, models.calibrator)
    registry.record(tmp_path, "v-old", True, "first model")
    registry.save(tmp_path, card("v-new"), models.booster, models.calibrator)
    state = registry.record(tmp_path, "v-new", False, "worse on the holdout")
    assert state["current"] == "v-old"  # the newest file is not the current model
    loaded = registry.load(tmp_path, state["current"])
    p_saved, _ = churn.booster_probabilities(
        loaded.booster, loaded.card.best_iteration, loaded.calibrator, loaded.card.categories,
        loaded.card.features, splits.test)
    np.testing.assert_allclose(p_saved, churn.predict(models, splits.test)["xgboost"],
                               rtol=1e-6)
    history = json.loads((tmp_path / "registry.json").read_text())["history"]
    assert [h["promoted"] for h in history] == [True, False]
    with pytest.raises(FileNotFoundError, match="missing"):
        registry.load(tmp_path, "v-gone")


def test_promotion_and_retraining_rules():
    assert registry.promotion_decision(0.80, None, 0.0) == (True, "first model")
    assert registry.promotion_decision(0.80, 0.80, 0.0)[0] is True
    promote, reason = registry.promotion_decision(0.78, 0.80, 0.01)
    assert promote is False and "keeps scoring" in reason
    card = registry.ModelCard(version="v", trained_at="", as_of_date="2026-01-01",
                              features=["a", "b"], categories={}, best_iteration=1, params={},
                              training_window={}, metrics={}, data_fingerprint="",
                              training_rows=1)
    assert registry.retrain_decision(None, "2026-01-02", 30, None, 0.2, ["a"])[0]
    assert registry.retrain_decision(card, "2026-01-02", 30, 0.1, 0.2, ["a", "c"])[0]
    assert registry.retrain_decision(card, "2026-03-01", 30, 0.1, 0.2, ["a", "b"])[0]
    assert registry.retrain_decision(card, "2026-01-10", 30, 0.5, 0.2, ["b", "a"])[0]
    assert not registry.retrain_decision(card, "2026-01-10", 30, 0.1, 0.2, ["b", "a"])[0]
    # a backfill of a date before the current model's: that model saw later data
    retrain, why = registry.retrain_decision(card, "2025-12-31", 30, 0.1, 0.2, ["a", "b"])
    assert retrain and "later data" in why
    assert registry.promotion_decision(0.70, 0.80, 0.0, current_saw_later_data=True)[0]
    a = registry.version_id("2026-01-10", "abc", {"x": 1})
    assert a == registry.version_id("2026-01-10", "abc", {"x": 1}) != registry.version_id(
        "2026-01-10", "abc", {"x": 2})


def test_scoring_partitions_gives_the_same_answers_as_scoring_everyone(trained):
    # what a Spark mapInPandas or Dask map_partitions does: score each partition on its own
    frame, _, models = trained
    args = (models.booster, models.best_iteration, models.calibrator, models.categories,
            models.features)
    whole_p, whole_c = churn.booster_probabilities(*args, frame)
    parts = [churn.booster_probabilities(*args, part) for part in
             (frame.iloc[:700], frame.iloc[700:1500], frame.iloc[1500:])]
    np.testing.assert_allclose(np.concatenate([p for p, _ in parts]), whole_p, rtol=1e-6)
    np.testing.assert_allclose(np.concatenate([c for _, c in parts]), whole_c, rtol=1e-5,
                               atol=1e-6)
