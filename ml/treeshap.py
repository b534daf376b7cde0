"""Exact TreeSHAP contributions of an XGBoost model, computed once per distinct path.

A tree's path-dependent SHAP values for a row depend only on which side of each of the
tree's splits the row falls (and which rows are missing): two rows with the same outcome at
every split of a tree get the same values from it. A depth-5 tree has at most 31 splits, so
at a million people a tree sees about 9,000 distinct outcome patterns among 150k rows (1.34M
over 142 trees, measured).
This module asks XGBoost for each tree's contributions of one representative row per
pattern and adds them up per row: the same numbers as `pred_contribs` over every row (up to
float32 rounding of the sum), at a fraction of the cost (20.5 s -> 4.7 s for 150k rows and
142 trees of depth 5 on 2 cores). The contributions themselves still come from XGBoost.

A split's outcome is computed as XGBoost does: features as float32 (categories as their
codes), a numeric split sends `x < threshold` one way, missing values their own way.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xgboost as xgb

from ml.grouping import combined_key, distinct


def _float32_matrix(x: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """The values XGBoost compares with its split conditions, and each column's type."""
    columns, types = [], []
    for name in x.columns:
        col = x[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes = col.cat.codes.to_numpy().astype(np.float32)
            codes[codes < 0] = np.nan
            columns.append(codes)
            types.append("c")
        else:
            columns.append(col.to_numpy(dtype=np.float32, na_value=np.nan))
            types.append("q")
    return np.stack(columns, axis=1) if columns else np.empty((len(x), 0), np.float32), types


def _tree_splits(booster: xgb.Booster, n_trees: int) -> list[dict[int, set]]:
    """Per tree: feature index -> its numeric split conditions (float32; empty for a
    categorical feature: its code itself tells the paths apart)."""
    model = json.loads(booster.save_raw("json"))
    trees = model["learner"]["gradient_booster"]["model"]["trees"][:n_trees]
    splits = []
    for tree in trees:
        used: dict[int, set] = {}
        for feature, condition, left, kind in zip(
                tree["split_indices"], tree["split_conditions"], tree["left_children"],
                tree["split_type"], strict=True):
            if left == -1:
                continue  # a leaf
            conditions = used.setdefault(feature, set())
            if kind == 0:
                conditions.add(np.float32(condition))
        splits.append(used)
    return splits


def _bin_codes(values: np.ndarray, thresholds: np.ndarray | None) -> np.ndarray:
    """0 for missing, else 1 + the number of thresholds <= the value (for a categorical
    feature, 1 + its code): equal codes take the same side of every one of the thresholds."""
    if thresholds is None:
        codes = np.nan_to_num(values, nan=-1.0).astype(np.int64) + 1
    else:
        codes = np.searchsorted(thresholds, values, side="right").astype(np.int64) + 1
    codes[np.isnan(values)] = 0
    return codes


def contributions(booster: xgb.Booster, x: pd.DataFrame, n_trees: int) -> np.ndarray:
    """Exact (path-dependent TreeSHAP) contributions of the first `n_trees` trees for the
    rows of x (columns as the model's features), without the bias column."""
    n = len(x)
    values, types = _float32_matrix(x)
    out = np.zeros((values.shape[1], n))  # feature-major: a tree adds to a few whole rows
    if n == 0:
        return out.T
    splits = _tree_splits(booster, n_trees)
    if len(splits) != n_trees or booster.num_boosted_rounds() < n_trees:
        # one tree per round is what slicing by round assumes (binary objective)
        raise ValueError(f"expected {n_trees} trees, one per boosting round")
    # every feature binned once by all of its thresholds; each tree maps those bins to its own
    thresholds = {}
    for used in splits:
        for feature, conditions in used.items():
            thresholds.setdefault(feature, set()).update(conditions)
    global_bins = {}
    for feature, conditions in thresholds.items():
        cuts = np.array(sorted(conditions), dtype=np.float32) if types[feature] == "q" else None
        global_bins[feature] = (_bin_codes(values[:, feature], cuts), cuts)
    names = list(x.columns)
    for tree, used in enumerate(splits):
        codes = []
        for feature, conditions in sorted(used.items()):
            bins, cuts = global_bins[feature]
            if cuts is None:
                codes.append((bins, int(bins.max()) + 1))
                continue
            own = np.array(sorted(conditions), dtype=np.float32)
            # global bin g (g >= 1) holds values from cuts[g - 2] up to cuts[g - 1]
            lower = np.r_[np.float32(-np.inf), cuts]
            to_own = np.r_[0, np.searchsorted(own, lower, side="right") + 1]
            codes.append((to_own[bins], len(own) + 2))
        pattern, first = distinct(combined_key(codes, n))
        matrix = xgb.DMatrix(values[first], feature_names=names, feature_types=types,
                             enable_categorical=True)
        per_pattern = booster[tree:tree + 1].predict(matrix, pred_contribs=True)
        for feature in used:
            out[feature] += per_pattern[pattern, feature]
    return out.T
