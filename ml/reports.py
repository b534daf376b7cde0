"""Pictures of the lifecycle marts: retention heatmap, lifecycle flow, KPI trend.

Plain functions from DataFrames to PNG bytes (matplotlib, headless), so the Dagster asset
only has to read the marts and attach the result.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers or in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

STAGE_ORDER = ["prospect", "new", "activated", "active", "reactivated", "dormant", "churned"]
STAGE_COLORS = {
    "prospect": "#c7c7c7", "new": "#9ecae1", "activated": "#4292c6", "active": "#2171b5",
    "reactivated": "#41ab5d", "dormant": "#fdae6b", "churned": "#d94801",
}


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def retention_heatmap(cohorts: pd.DataFrame, cohort_period: str = "week",
                      max_cohorts: int = 26) -> bytes:
    """Cohorts (rows) x period number (columns), colour = retention rate, for all channels.
    Expects cohort_retention rows: cohort_period, cohort_start, acquisition_channel,
    period_number, retention_rate, cohort_users."""
    df = cohorts[(cohorts["cohort_period"] == cohort_period)
                 & (cohorts["acquisition_channel"] == "all")]
    fig, ax = plt.subplots(figsize=(10, 6))
    if df.empty:
        ax.text(0.5, 0.5, "no complete cohort periods yet", ha="center", va="center")
        ax.set_axis_off()
        return _png(fig)
    grid = df.pivot_table(index="cohort_start", columns="period_number",
                          values="retention_rate").sort_index().tail(max_cohorts)
    sizes = df.groupby("cohort_start")["cohort_users"].max()
    im = ax.imshow(grid.to_numpy(dtype=float), aspect="auto", cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(grid.columns)), [str(c) for c in grid.columns], fontsize=7)
    labels = [f"{pd.Timestamp(d):%Y-%m-%d} (n={int(sizes.get(d, 0))})" for d in grid.index]
    ax.set_yticks(range(len(grid.index)), labels, fontsize=7)
    ax.set_xlabel(f"{cohort_period}s since signup")
    ax.set_title(f"Retention by signup {cohort_period} (share active in period N)")
    fig.colorbar(im, ax=ax, fraction=0.03)
    return _png(fig)


def lifecycle_flow(daily: pd.DataFrame, transitions: pd.DataFrame, last_days: int = 30) -> bytes:
    """Left: people per stage over time (stacked). Right: moves between stages in the last
    `last_days` days (from-stage x to-stage, counts)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5),
                                      gridspec_kw={"width_ratios": [3, 2]})
    pivot = daily.pivot_table(index="date", columns="lifecycle_stage", values="users",
                              aggfunc="sum").reindex(columns=STAGE_ORDER).fillna(0)
    left.stackplot(pivot.index, [pivot[s] for s in STAGE_ORDER], labels=STAGE_ORDER,
                   colors=[STAGE_COLORS[s] for s in STAGE_ORDER])
    left.set_title("People per lifecycle stage")
    left.legend(loc="upper left", fontsize=7)
    left.tick_params(axis="x", labelrotation=30, labelsize=7)
    if transitions.empty:
        right.set_axis_off()
        return _png(fig)
    end = pd.to_datetime(transitions["date"]).max()
    recent = transitions[(pd.to_datetime(transitions["date"]) > end - pd.Timedelta(days=last_days))
                         & transitions["from_stage"].notna()]
    matrix = recent.pivot_table(index="from_stage", columns="to_stage", values="users",
                                aggfunc="sum").reindex(index=STAGE_ORDER, columns=STAGE_ORDER)
    values = matrix.fillna(0).to_numpy(dtype=float)
    right.imshow(np.log1p(values), cmap="Oranges")
    for (i, j), v in np.ndenumerate(values):
        if v:
            right.text(j, i, f"{int(v)}", ha="center", va="center", fontsize=7)
    right.set_xticks(range(len(STAGE_ORDER)), STAGE_ORDER, rotation=45, fontsize=7)
    right.set_yticks(range(len(STAGE_ORDER)), STAGE_ORDER, fontsize=7)
    right.set_xlabel("to stage")
    right.set_ylabel("from stage")
    right.set_title(f"Moves in the last {last_days} days")
    return _png(fig)


def kpi_trend(kpis: pd.DataFrame) -> bytes:
    """DAU / WAU / MAU, revenue and the trailing-30-day churn rate over time."""
    df = kpis.sort_values("date")
    fig, (usage, money, churn) = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    for col in ("dau", "wau", "mau"):
        usage.plot(df["date"], df[col], label=col.upper())
    usage.set_title("Active users")
    usage.legend(fontsize=7)
    money.bar(df["date"], df["revenue"].astype(float), width=1.0, color="#41ab5d")
    money.set_title("Revenue (completed orders)")
    churn.plot(df["date"], df["churn_rate_monthly"].astype(float), color="#d94801")
    churn.set_title("Churn rate, trailing 30 days")
    churn.tick_params(axis="x", labelrotation=30, labelsize=7)
    return _png(fig)


def churn_model_plots(y: np.ndarray, predictions: dict[str, np.ndarray],
                      importance: dict[str, float], top_features: int = 15) -> bytes:
    """ROC, precision-recall, calibration, cumulative gains (lift) of every model on the test
    split, and XGBoost's feature importance (gain)."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    fig, axes = plt.subplots(2, 3, figsize=(15, 9))
    roc_ax, pr_ax, cal_ax, lift_ax, imp_ax, empty = axes.ravel()
    for name, p in predictions.items():
        fpr, tpr, _ = roc_curve(y, p)
        roc_ax.plot(fpr, tpr, label=name)
        prec, rec, _ = precision_recall_curve(y, p)
        pr_ax.plot(rec, prec, label=name)
        order = np.argsort(-p, kind="stable")
        gains = np.cumsum(y[order]) / max(y.sum(), 1)
        lift_ax.plot(np.arange(1, len(y) + 1) / len(y), gains, label=name)
        if name.startswith("xgboost"):
            bins = np.clip((p * 10).astype(int), 0, 9)
            frame = pd.DataFrame({"b": bins, "p": p, "y": y}).groupby("b").mean()
            cal_ax.plot(frame["p"], frame["y"], marker="o", label=name)
    roc_ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    roc_ax.set_title("ROC (test split)")
    roc_ax.set_xlabel("false positive rate")
    roc_ax.set_ylabel("true positive rate")
    pr_ax.set_title("Precision-recall (test split)")
    pr_ax.set_xlabel("recall")
    pr_ax.set_ylabel("precision")
    cal_ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    cal_ax.set_title("Calibration: predicted vs observed")
    cal_ax.set_xlabel("mean predicted probability")
    cal_ax.set_ylabel("observed churn rate")
    lift_ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    lift_ax.set_title("Cumulative gains (share of churners found)")
    lift_ax.set_xlabel("share of people contacted, riskiest first")
    for ax in (roc_ax, pr_ax, cal_ax, lift_ax):
        ax.legend(fontsize=7)
    top = sorted(importance.items(), key=lambda kv: kv[1])[-top_features:]
    imp_ax.barh([k for k, _ in top], [v for _, v in top], color="#4292c6")
    imp_ax.set_title("XGBoost feature importance (gain)")
    imp_ax.tick_params(axis="y", labelsize=7)
    empty.set_axis_off()
    return _png(fig)


def clv_holdout_plot(by_frequency: pd.DataFrame, cutoff: str, holdout_days: int) -> bytes:
    """Mean predicted vs actual repeat purchases in the holdout period, per number of repeat
    purchases before the cut-off (the BG/NBD paper's conditional-expectation check)."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    x = np.arange(len(by_frequency))
    ax.bar(x - 0.2, by_frequency["actual"], width=0.4, label="actual", color="#2171b5")
    ax.bar(x + 0.2, by_frequency["predicted"], width=0.4, label="BG/NBD", color="#fdae6b")
    ax.set_xticks(x, by_frequency["frequency_label"].astype(str))
    ax.set_xlabel(f"repeat purchases up to {cutoff}")
    ax.set_ylabel(f"mean repeat purchases in the next {holdout_days} days")
    ax.set_title("CLV holdout check")
    ax.legend()
    return _png(fig)
