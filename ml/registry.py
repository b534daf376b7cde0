"""The churn model registry under WAREHOUSE/models/churn/: every trained model with its model
card, and registry.json naming the current version. Scoring loads a model by the version the
registry records, never by "the newest file"."""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.isotonic import IsotonicRegression


@dataclass
class ModelCard:
    version: str
    trained_at: str
    as_of_date: str
    features: list[str]
    categories: dict[str, list[str]]
    best_iteration: int
    params: dict
    training_window: dict
    metrics: dict  # model -> split -> metric -> value
    data_fingerprint: str
    training_rows: int
    libraries: dict = field(default_factory=dict)


@dataclass
class LoadedModel:
    card: ModelCard
    booster: xgb.Booster
    calibrator: IsotonicRegression


def fingerprint(frame: pd.DataFrame) -> str:
    """Content hash of a training frame (row order independent)."""
    hashed = pd.util.hash_pandas_object(frame.sort_index(axis=1), index=False).to_numpy()
    digest = hashlib.sha256(np.sort(hashed).tobytes())
    digest.update(",".join(sorted(frame.columns)).encode())
    return digest.hexdigest()


def version_id(as_of: str, data_fingerprint: str, settings: dict) -> str:
    """as-of date plus a hash of the training data and every setting that shapes the model."""
    digest = hashlib.sha256(data_fingerprint.encode())
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return f"{as_of.replace('-', '')}-{digest.hexdigest()[:10]}"


def libraries() -> dict[str, str]:
    names = ["scikit-learn", "pandas", "numpy", "duckdb", "dbt-core", "dagster"]
    return {"python": platform.python_version(), "xgboost": xgb.__version__,
            **{n: package_version(n) for n in names}}


def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def save(root: Path, card: ModelCard, booster: xgb.Booster,
         calibrator: IsotonicRegression) -> Path:
    folder = Path(root) / card.version
    folder.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(folder / "model.ubj"))
    _write_json(folder / "calibration.json", {
        "x": calibrator.X_thresholds_.tolist(), "y": calibrator.y_thresholds_.tolist()})
    _write_json(folder / "model_card.json", asdict(card))
    return folder


def load(root: Path, version: str) -> LoadedModel:
    folder = Path(root) / version
    if not folder.is_dir():
        raise FileNotFoundError(f"churn model {version} is recorded in the registry but "
                                f"{folder} is missing")
    card = ModelCard(**json.loads((folder / "model_card.json").read_text()))
    booster = xgb.Booster()
    booster.load_model(str(folder / "model.ubj"))
    cal = json.loads((folder / "calibration.json").read_text())
    calibrator = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    calibrator.fit(np.array(cal["x"]), np.array(cal["y"]))
    return LoadedModel(card, booster, calibrator)


def read_registry(root: Path) -> dict:
    path = Path(root) / "registry.json"
    if not path.exists():
        return {"current": None, "history": []}
    return json.loads(path.read_text())


def record(root: Path, version: str, promoted: bool, reason: str) -> dict:
    registry = read_registry(root)
    registry["history"].append({"version": version, "promoted": promoted, "reason": reason,
                                "at": datetime.now(UTC).isoformat(timespec="seconds")})
    if promoted:
        registry["current"] = version
    Path(root).mkdir(parents=True, exist_ok=True)
    _write_json(Path(root) / "registry.json", registry)
    return registry


def promotion_decision(new_auc: float, current_auc: float | None, max_drop: float,
                       current_saw_later_data: bool = False) -> tuple[bool, str]:
    """Promote unless the new model is worse than the current one on the same holdout. A
    current model trained as of a later date than this run (a backfill of a past date) is
    no candidate: it saw data from after the run's date."""
    if current_auc is None:
        return True, "first model"
    if current_saw_later_data:
        return True, "the current model was trained on data after this run's date"
    if new_auc >= current_auc - max_drop:
        return True, (f"test ROC-AUC {new_auc:.4f} vs current {current_auc:.4f} on the same "
                      "holdout: not worse")
    return False, (f"test ROC-AUC {new_auc:.4f} is below the current model's {current_auc:.4f} "
                   f"on the same holdout (allowed drop {max_drop}); the current model keeps "
                   "scoring")


def retrain_decision(current: ModelCard | None, as_of: str, max_age_days: int,
                     max_psi: float | None, psi_warning: float,
                     features: list[str]) -> tuple[bool, str]:
    """Train when there is no model, the features changed, the model is too old, or the
    data drifted past the warning level."""
    if current is None:
        return True, "no current model"
    if sorted(current.features) != sorted(features):
        return True, "the feature set changed"
    age = (pd.Timestamp(as_of) - pd.Timestamp(current.as_of_date)).days
    if age < 0:
        return True, (f"current model was trained as of {current.as_of_date}, after this run's "
                      "date: a backfill must not score with a model that saw later data")
    if age > max_age_days:
        return True, f"current model is {age} days old (max {max_age_days})"
    if max_psi is not None and max_psi > psi_warning:
        return True, f"feature drift: PSI {max_psi:.3f} above {psi_warning}"
    return False, f"current model is {age} days old and data has not drifted"
