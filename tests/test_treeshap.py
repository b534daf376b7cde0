"""ml/treeshap.py gives XGBoost's own exact contributions, row for row."""

import json

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from ml import treeshap


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idle = rng.integers(0, 90, n).astype(float)
    idle[rng.random(n) < 0.1] = np.nan  # missing values take their own branch
    return pd.DataFrame({
        "days_since_active": idle,
        "spend_90": rng.gamma(2.0, 20.0, n),
        "tickets": rng.poisson(0.7, n).astype(float),
        "country": pd.Categorical(rng.choice(["US", "CN", "DE", "BR", None], n),
                                  categories=["BR", "CN", "DE", "US"]),
    })


@pytest.fixture(scope="module")
def model():
    x = _frame(3000, 0)
    logit = (-2 + 0.05 * np.nan_to_num(x["days_since_active"], nan=80)
             + np.where(x["spend_90"] < 30, x["tickets"], 0) + (x["country"] == "CN") * 0.8)
    y = np.random.default_rng(1).random(len(x)) < 1 / (1 + np.exp(-logit))
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 5, "eta": 0.3,
                         "max_cat_to_onehot": 1, "seed": 0, "nthread": 2},
                        xgb.DMatrix(x, label=y, enable_categorical=True), num_boost_round=40)
    return booster


def _xgboost_contributions(booster, x, n_trees):
    return booster.predict(xgb.DMatrix(x, enable_categorical=True), pred_contribs=True,
                           iteration_range=(0, n_trees))[:, :-1]


def _split_conditions(booster, feature_index):
    trees = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]
    return sorted({c for t in trees for f, c, left, kind in zip(
        t["split_indices"], t["split_conditions"], t["left_children"], t["split_type"],
        strict=True) if f == feature_index and left != -1 and kind == 0})


def test_equals_xgboost_exact_contributions_on_every_row(model):
    x = _frame(4000, 7)
    np.testing.assert_allclose(treeshap.contributions(model, x, 40),
                               _xgboost_contributions(model, x, 40), atol=2e-6)


def test_values_on_a_split_condition_and_a_float32_rounding_away_from_it(model):
    # x < condition goes one way, x == condition the other; XGBoost compares in float32, so
    # a float64 value just below a condition that rounds onto it goes the condition's way
    conditions = _split_conditions(model, 1)  # spend_90
    assert conditions
    spend = []
    for c in conditions:
        spend += [c, np.nextafter(np.float32(c), np.float32(-np.inf)), c - 1e-12, c + 1e-12]
    x = _frame(len(spend), 3).assign(spend_90=np.array(spend, dtype=float))
    np.testing.assert_allclose(treeshap.contributions(model, x, 40),
                               _xgboost_contributions(model, x, 40), atol=2e-6)


def test_first_trees_only_and_no_rows(model):
    x = _frame(500, 11)
    np.testing.assert_allclose(treeshap.contributions(model, x, 7),
                               _xgboost_contributions(model, x, 7), atol=2e-6)
    assert treeshap.contributions(model, x.head(0), 40).shape == (0, 4)


def test_one_row_and_all_rows_alike(model):
    x = pd.concat([_frame(1, 5)] * 50, ignore_index=True)
    got = treeshap.contributions(model, x, 40)
    np.testing.assert_allclose(got, _xgboost_contributions(model, x, 40), atol=2e-6)
    assert (got == got[0]).all()
