"""Customer lifetime value: BG/NBD (repeat purchasing) and Gamma-Gamma (spend per purchase),
fitted by maximum likelihood with pymc-marketing, plus per-person predictions, value tiers and
a holdout check.

Conventions (they decide whether the fit reproduces the published CDNOW parameters):
purchases on the same day merge into one; `frequency` counts repeat purchase days; `recency`
(last minus first purchase day) and `T` (as-of date minus first purchase day) are whole-day
differences; `monetary_value` is the mean amount of the repeat purchase days. Time is counted
in days unless `time_unit="week"` (days / 7).

Maximum likelihood: pymc-marketing's `fit(method="map")` with flat priors. `pymc.find_MAP`
optimises the log density without the Jacobian of the positivity transform, so with flat
priors the MAP is the maximum-likelihood estimate.
"""

from __future__ import annotations

import datetime as dt
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, hyp2f1

from ml.grouping import first_rows

DAYS_PER_UNIT = {"day": 1.0, "week": 7.0}
DAYS_PER_MONTH = 30  # pymc-marketing's CLV steps are 30-day months for daily data
SUMMARY_COLUMNS = ["user_key", "frequency", "recency", "T", "monetary_value",
                   "first_purchase_date", "last_purchase_date"]


class ClvFitError(Exception):
    """Too little purchase history to fit the models."""


@dataclass(frozen=True)
class ClvFit:
    bg_nbd: dict[str, float]        # r, alpha, a, b
    gamma_gamma: dict[str, float]   # p, q, v (the papers' gamma)
    time_unit: str
    customers: int                  # people with at least one purchase
    repeat_customers: int           # of whom with a repeat purchase (Gamma-Gamma's data)
    spend_frequency_corr: float     # Gamma-Gamma assumes spend independent of frequency
    bg_model: object                # the fitted pymc-marketing models (predictions use the
    gg_model: object                # parameters alone: see predict)


def cache_root() -> Path:
    """The machine's ULM cache, shared by every warehouse: `ULM_CACHE_DIR`, default
    ~/.cache/ulm (scripts/bootstrap.sh uses the same default)."""
    return Path(os.environ.get("ULM_CACHE_DIR") or Path.home() / ".cache" / "ulm")


def compile_dir() -> Path:
    """Where pytensor keeps the C code it compiles for the models: `ULM_CACHE_DIR/pytensor`,
    so only the first fit on a machine pays the compilation (~25 s here)."""
    return cache_root() / "pytensor"


def use_compile_dir(path: Path | None = None) -> None:
    """Point pytensor's compile cache at `path` (default `compile_dir()`); PYTENSOR_FLAGS set
    by the user wins. Only effective before pytensor is first imported in this process."""
    path = path or compile_dir()
    path.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTENSOR_FLAGS", f"base_compiledir={path}")


def warm_up() -> float:
    """Fit both models once on a tiny made-up history, so pytensor compiles (and caches)
    its C code now (at install) rather than in the first pipeline run. Returns seconds."""
    import time

    use_compile_dir()
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    n = 60
    days = pd.DataFrame({
        "user_key": np.repeat(np.arange(n).astype(str), 3),
        "purchase_date": pd.Timestamp("2026-01-01")
        + pd.to_timedelta(np.sort(rng.integers(0, 300, (n, 3)), axis=1).ravel(), unit="D"),
        "amount": rng.gamma(2.0, 20.0, 3 * n),
    })
    summary = purchase_summary(days, "2026-12-31")
    predict(fit(summary, "day", min_repeat_customers=5), summary, 12, 0.1)
    return time.perf_counter() - started


def purchase_summary(purchase_days: pd.DataFrame, as_of: str | pd.Timestamp,
                     time_unit: str = "day") -> pd.DataFrame:
    """One row per person from one row per (person, purchase day): frequency, recency, T,
    monetary value. Input columns: user_key, purchase_date, amount (that day's total).
    Days after `as_of` are ignored; several rows for one day are merged."""
    as_of = pd.Timestamp(as_of).normalize()
    unit = DAYS_PER_UNIT[time_unit]
    df = purchase_days.loc[:, ["user_key", "purchase_date", "amount"]].copy()
    df["purchase_date"] = pd.to_datetime(df["purchase_date"]).dt.normalize()
    df = df[df["purchase_date"] <= as_of]
    if df.empty:
        types = {"user_key": "object", "first_purchase_date": "datetime64[us]",
                 "last_purchase_date": "datetime64[us]"}
        return pd.DataFrame({c: pd.Series(dtype=types.get(c, "float64"))
                             for c in SUMMARY_COLUMNS})
    # grouped by integer codes of the keys (in key order): grouping 4M rows by the string
    # keys themselves took 6 s at 1M people
    codes, keys = pd.factorize(df["user_key"], sort=True)
    df = (df.assign(person=codes).drop(columns="user_key")
          .groupby(["person", "purchase_date"], as_index=False)["amount"].sum()
          .sort_values(["person", "purchase_date"]))
    person = df["person"].to_numpy()
    is_repeat = np.r_[False, person[1:] == person[:-1]]  # every day after a person's first
    g = df.groupby("person")
    first = g["purchase_date"].min()
    last = g["purchase_date"].max()
    repeat_amount = df[is_repeat].groupby("person")["amount"].mean()
    out = pd.DataFrame({
        "user_key": pd.Series(keys[first.index.to_numpy()]),
        "frequency": (g.size() - 1).to_numpy().astype("float64"),
        "recency": ((last - first).dt.days / unit).to_numpy(),
        "T": ((as_of - first).dt.days / unit).to_numpy(),
        "monetary_value": repeat_amount.reindex(first.index).fillna(0.0).to_numpy(),
        "first_purchase_date": first.to_numpy(),
        "last_purchase_date": last.to_numpy(),
    })
    return out.reset_index(drop=True)


def _flat_priors(names):
    from pymc_extras.prior import Prior
    return {n: Prior("HalfFlat") for n in names}


def _model_frame(summary: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"customer_id": np.arange(len(summary)),
                         "frequency": summary["frequency"].to_numpy(dtype="float64"),
                         "recency": summary["recency"].to_numpy(dtype="float64"),
                         "T": summary["T"].to_numpy(dtype="float64"),
                         "monetary_value": summary["monetary_value"].to_numpy(dtype="float64")})


def _point(model, names) -> dict[str, float]:
    post = model.idata.posterior
    return {n: float(post[n].values.ravel()[0]) for n in names}


def fit(summary: pd.DataFrame, time_unit: str = "day", min_repeat_customers: int = 20) -> ClvFit:
    """Maximum-likelihood BG/NBD on every customer and Gamma-Gamma on those with a repeat
    purchase (positive spend)."""
    repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    if len(repeat) < min_repeat_customers:
        raise ClvFitError(f"{len(repeat)} people with a repeat purchase; at least "
                          f"{min_repeat_customers} are needed to fit CLV models")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

        frame = _model_frame(summary)
        bg = BetaGeoModel(data=frame[["customer_id", "frequency", "recency", "T"]],
                          model_config=_flat_priors(["r", "alpha", "a", "b"]))
        bg.fit(method="map", progressbar=False)
        gg_frame = _model_frame(repeat)
        gg = GammaGammaModel(data=gg_frame[["customer_id", "frequency", "monetary_value"]],
                             model_config=_flat_priors(["p", "q", "v"]))
        gg.fit(method="map", progressbar=False)
    corr = float(np.corrcoef(repeat["frequency"], repeat["monetary_value"])[0, 1]) \
        if repeat["frequency"].nunique() > 1 and repeat["monetary_value"].nunique() > 1 \
        else float("nan")
    return ClvFit(bg_nbd=_point(bg, ["r", "alpha", "a", "b"]),
                  gamma_gamma=_point(gg, ["p", "q", "v"]), time_unit=time_unit,
                  customers=len(summary), repeat_customers=len(repeat),
                  spend_frequency_corr=corr, bg_model=bg, gg_model=gg)


def params_table(f: ClvFit) -> pd.DataFrame:
    """clv_model_params rows: model x parameter. Gamma-Gamma's `v` is the papers' gamma."""
    rows = [("bg_nbd", k, v) for k, v in f.bg_nbd.items()]
    rows += [("gamma_gamma", "gamma" if k == "v" else k, v) for k, v in f.gamma_gamma.items()]
    return pd.DataFrame(rows, columns=["model", "param", "value"]).assign(
        time_unit=f.time_unit, customers=f.customers, repeat_customers=f.repeat_customers,
        spend_frequency_corr=f.spend_frequency_corr)


def stored_fit(params: pd.DataFrame) -> ClvFit:
    """The fit a clv_model_params table holds (rows of params_table): predict needs only the
    parameters, so a stored fit scores without pymc. Raises ValueError when a parameter is
    missing (a table from a run that could not fit)."""
    values = {(m, "v" if m == "gamma_gamma" and p == "gamma" else p): float(v)
              for m, p, v in zip(params["model"], params["param"], params["value"], strict=True)}
    wanted = [("bg_nbd", n) for n in ("r", "alpha", "a", "b")] + [
        ("gamma_gamma", n) for n in ("p", "q", "v")]
    missing = [f"{m}.{n}" for m, n in wanted if (m, n) not in values]
    if missing:
        raise ValueError(f"stored CLV parameters lack {', '.join(missing)}")
    first = params.iloc[0]
    return ClvFit(bg_nbd={n: values[("bg_nbd", n)] for n in ("r", "alpha", "a", "b")},
                  gamma_gamma={n: values[("gamma_gamma", n)] for n in ("p", "q", "v")},
                  time_unit=str(first["time_unit"]), customers=int(first["customers"]),
                  repeat_customers=int(first["repeat_customers"]),
                  spend_frequency_corr=float(first["spend_frequency_corr"]),
                  bg_model=None, gg_model=None)


def repeat_customers(summary: pd.DataFrame) -> int:
    """People with a repeat purchase and positive spend: the Gamma-Gamma model's data."""
    return int(((summary["frequency"] > 0) & (summary["monetary_value"] > 0)).sum())


def refit_decision(stored: ClvFit | None, fitted_on: dt.date | None, as_of: dt.date,
                   customers: int, repeat: int, time_unit: str, every_days: int,
                   max_change: float, min_repeat_customers: int) -> tuple[bool, str]:
    """Fit again, or score with the stored parameters? A year of purchase history moves the
    maximum-likelihood parameters little from one day to the next, and the fit is most of the
    CLV step's time, so a stored fit stands while it is younger than `every_days`, from a date
    not after this run's (a backfill of an earlier date fits on that date's data), in the same
    time unit, and the buyers and repeat buyers have each changed by at most `max_change`
    (a share) since it was fitted."""
    if stored is None or fitted_on is None:
        return True, "no stored fit"
    age = (as_of - fitted_on).days
    if age < 0:
        return True, (f"the stored fit is of {fitted_on}, after this run's date: a backfill "
                      "fits on its own date's data")
    if age >= every_days:
        return True, f"the stored fit is {age} days old (refit every {every_days})"
    if stored.time_unit != time_unit:
        return True, f"the stored fit counts time in {stored.time_unit}s, not {time_unit}s"
    if repeat < min_repeat_customers:
        return True, f"{repeat} people with a repeat purchase now"
    for what, now, then in (("buyers", customers, stored.customers),
                            ("repeat buyers", repeat, stored.repeat_customers)):
        change = abs(now - then) / max(then, 1)
        if change > max_change:
            return True, (f"{what} changed by {change:.1%} since the fit ({then:,} -> {now:,}; "
                          f"refit above {max_change:.1%})")
    return False, (f"the fit of {fitted_on} ({age} days old) stands: buyers {stored.customers:,} "
                   f"-> {customers:,}, repeat buyers {stored.repeat_customers:,} -> {repeat:,}")


# pymc-marketing's `customer_lifetime_value` steps: one month of the purchase history's unit
CLV_MONTH = {"day": 30.0, "week": 4.345}


def distinct_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(for each row, the number of its distinct (a, b) pair; each pair's first row)."""
    codes = pd.DataFrame({"a": a, "b": b}).groupby(["a", "b"], sort=False).ngroup().to_numpy()
    return codes, first_rows(codes)


def bg_nbd_expected_purchases(params: dict[str, float], frequency: np.ndarray,
                              recency: np.ndarray, T: np.ndarray, t: float,
                              pairs: tuple[np.ndarray, np.ndarray] | None = None
                              ) -> np.ndarray:
    """Expected repeat purchases in the next `t` time units (Fader, Hardie & Lee 2005, eq.
    10), as pymc-marketing's `BetaGeoModel.expected_purchases` computes it for a point
    estimate, on arrays (836k buyers' predictions took 3.7 s through its xarray methods).
    `pairs`: distinct_pairs(frequency, T), when already known."""
    r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
    x = np.asarray(frequency, dtype="float64")
    T = np.asarray(T, dtype="float64")
    # hyp2f1 is most of the cost and depends on (frequency, T) alone: 12k distinct pairs
    # among 836k buyers (0.22-0.24 s a call over all 836k; predict makes 13 calls)
    codes, first = pairs if pairs is not None else distinct_pairs(x, T)
    xs, Ts = x[first], T[first]
    numerator = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(
        r + xs, b + xs, a + b + xs - 1, t / (alpha + Ts + t))[codes]
    numerator *= (a + b + x - 1) / (a - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = (a / (b + x - 1)) * ((alpha + T) / (alpha + np.asarray(recency, "float64"))
                                    ) ** (r + x)
    return numerator / (1 + np.where(x > 0, odds, 0.0))


def bg_nbd_probability_alive(params: dict[str, float], frequency: np.ndarray,
                             recency: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(alive) (Fader, Hardie & Lee 2008), as `BetaGeoModel.expected_probability_alive`."""
    r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
    x = np.asarray(frequency, dtype="float64")
    log_div = (r + x) * np.log((alpha + np.asarray(T, "float64"))
                               / (alpha + np.asarray(recency, "float64"))) \
        + np.log(a / (b + np.maximum(x, 1) - 1))
    return np.where(x == 0, 1.0, expit(-log_div))


def gamma_gamma_expected_spend(params: dict[str, float], frequency: np.ndarray,
                               monetary_value: np.ndarray) -> np.ndarray:
    """Gamma-Gamma conditional mean spend (Fader & Hardie 2013, eq. 5), as
    `GammaGammaModel.expected_customer_spend`; with frequency 0, the population mean."""
    p, q, v = params["p"], params["q"], params["v"]
    x = np.asarray(frequency, dtype="float64")
    weight = p * x / (p * x + q - 1)
    return (1 - weight) * (v * p / (q - 1)) + weight * np.asarray(monetary_value, "float64")


def lifetime_value(params: dict[str, float], frequency: np.ndarray, recency: np.ndarray,
                   T: np.ndarray, spend: np.ndarray, time_unit: str, horizon_months: int,
                   monthly_discount_rate: float) -> np.ndarray:
    """Expected purchases of each month of the horizon x spend, discounted monthly, as
    pymc-marketing's `customer_lifetime_value` sums them (one step over the whole horizon
    when the rate is 0; its months are 30 days, or 4.345 weeks)."""
    month = CLV_MONTH[time_unit]
    months = [horizon_months] if monthly_discount_rate == 0.0 else range(1, horizon_months + 1)
    total = np.zeros(len(np.asarray(frequency)))
    before = 0.0
    pairs = distinct_pairs(frequency, T)
    for m in months:
        cumulative = bg_nbd_expected_purchases(params, frequency, recency, T, m * month, pairs)
        total += spend * (cumulative - before) / (1 + monthly_discount_rate) ** m
        before = cumulative
    return total


def predict(f: ClvFit, summary: pd.DataFrame, horizon_months: int,
            annual_discount_rate: float) -> pd.DataFrame:
    """Per person: probability alive, expected purchases and average order value over the
    horizon, and CLV = the sum over the horizon's months of expected purchases that month x
    expected order value, discounted monthly at the annual rate. Someone with no repeat
    purchase gets the population-level answer of both models (not a blank). Only the fitted
    parameters are used: predicting needs neither pymc nor the fitted models."""
    if summary.empty:
        return summary.assign(p_alive=[], expected_purchases=[],
                              expected_avg_order_value=[], clv=[])
    frame = _model_frame(summary)
    x, t_x, T = frame["frequency"].to_numpy(), frame["recency"].to_numpy(), frame["T"].to_numpy()
    horizon = horizon_months * DAYS_PER_MONTH / DAYS_PER_UNIT[f.time_unit]
    spend = gamma_gamma_expected_spend(f.gamma_gamma, x,
                                       np.where(x > 0, frame["monetary_value"], 0.0))
    monthly = (1.0 + annual_discount_rate) ** (1.0 / 12.0) - 1.0
    return summary.assign(
        p_alive=bg_nbd_probability_alive(f.bg_nbd, x, t_x, T),
        expected_purchases=bg_nbd_expected_purchases(f.bg_nbd, x, t_x, T, horizon),
        expected_avg_order_value=spend,
        clv=lifetime_value(f.bg_nbd, x, t_x, T, spend, f.time_unit, horizon_months, monthly))


def value_tiers(clv: pd.Series, high_share: float, medium_share: float) -> pd.Series:
    """high: the top `high_share` of people by CLV, medium: the next `medium_share`, low: the
    rest. Ties share a tier (ranked by CLV, then by key order for a stable cut)."""
    n = len(clv)
    if n == 0:
        return pd.Series([], dtype="string", index=clv.index)
    rank = clv.rank(method="first", ascending=False).to_numpy()
    tier = np.where(rank <= np.ceil(high_share * n), "high",
                    np.where(rank <= np.ceil((high_share + medium_share) * n), "medium", "low"))
    return pd.Series(tier, index=clv.index, dtype="string")


def holdout_check(purchase_days: pd.DataFrame, as_of: str | pd.Timestamp, holdout_days: int,
                  time_unit: str = "day", min_repeat_customers: int = 20,
                  max_frequency_group: int = 7) -> dict:
    """Fit on purchases up to `as_of - holdout_days`, predict each person's repeat purchase
    days in the holdout period, and compare with what happened: in total, per frequency in
    the fitting period (the papers' conditional-expectation check), and per person."""
    as_of = pd.Timestamp(as_of).normalize()
    cutoff = as_of - pd.Timedelta(days=holdout_days)
    calib = purchase_summary(purchase_days, cutoff, time_unit)
    if calib.empty:
        raise ClvFitError(f"no purchases on or before the holdout cut-off {cutoff.date()}")
    f = fit(calib, time_unit, min_repeat_customers)
    horizon = holdout_days / DAYS_PER_UNIT[time_unit]
    predicted = bg_nbd_expected_purchases(f.bg_nbd, calib["frequency"], calib["recency"],
                                          calib["T"], horizon)
    days = purchase_days.loc[:, ["user_key", "purchase_date"]].copy()
    days["purchase_date"] = pd.to_datetime(days["purchase_date"]).dt.normalize()
    after = days[(days["purchase_date"] > cutoff) & (days["purchase_date"] <= as_of)]
    actual = after.drop_duplicates().groupby("user_key").size()
    per_person = pd.DataFrame({
        "user_key": calib["user_key"].to_numpy(),
        "frequency": calib["frequency"].to_numpy().astype(int),
        "predicted": predicted,
        "actual": actual.reindex(calib["user_key"]).fillna(0).to_numpy(),
    })
    per_person["frequency_group"] = np.minimum(per_person["frequency"], max_frequency_group)
    groups = (per_person.groupby("frequency_group")
              .agg(customers=("user_key", "size"), predicted=("predicted", "mean"),
                   actual=("actual", "mean")).reset_index())
    groups["frequency_label"] = groups["frequency_group"].map(
        lambda k: f"{k}+" if k == max_frequency_group else str(k))
    err = per_person["predicted"] - per_person["actual"]
    total_pred = float(per_person["predicted"].sum())
    total_actual = float(per_person["actual"].sum())
    return {
        "cutoff_date": cutoff.date().isoformat(), "holdout_days": holdout_days,
        "customers": len(per_person), "params": {**f.bg_nbd, **f.gamma_gamma},
        "predicted_total": total_pred, "actual_total": total_actual,
        "total_error_pct": 100 * (total_pred - total_actual) / total_actual
        if total_actual else float("nan"),
        "mae_per_person": float(err.abs().mean()),
        "rmse_per_person": float(np.sqrt((err ** 2).mean())),
        "by_frequency": groups[["frequency_label", "customers", "predicted", "actual"]],
    }
