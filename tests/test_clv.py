"""CLV: the published CDNOW maximum-likelihood parameters, the purchase summary conventions,
and per-person predictions against the closed-form BG/NBD and Gamma-Gamma expressions."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy.special import hyp2f1

from ml import clv

# the CDNOW sample ships inside the `lifetimes` package (a test-only dependency); only its
# data file is used: importing lifetimes itself needs setuptools' pkg_resources
CDNOW_SAMPLE = (Path(importlib.util.find_spec("lifetimes").origin).parent / "datasets"
                / "CDNOW_sample.txt")
CALIBRATION_END = "1997-09-30"  # end of the papers' 39-week calibration period

# Fader, Hardie & Lee (2005) BG/NBD (alpha in weeks); Fader & Hardie (2013) Gamma-Gamma
PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426,
             "p": 6.25, "q": 3.74, "v": 15.44}


def cdnow_purchase_days() -> pd.DataFrame:
    raw = pd.read_csv(CDNOW_SAMPLE, sep=r"\s+", header=None,
                      names=["customer", "customer_sample", "date", "cds", "amount"],
                      dtype={"customer": str, "date": str})
    return pd.DataFrame({"user_key": raw["customer"],
                         "purchase_date": pd.to_datetime(raw["date"], format="%Y%m%d"),
                         "amount": raw["amount"]})


@pytest.fixture(scope="module")
def cdnow():
    summary = clv.purchase_summary(cdnow_purchase_days(), CALIBRATION_END, "week")
    return summary, clv.fit(summary, "week")


def test_cdnow_fit_reproduces_the_published_maximum_likelihood_parameters(cdnow):
    summary, fit = cdnow
    assert len(summary) == 2357 and fit.repeat_customers == 946
    fitted = {**fit.bg_nbd, **fit.gamma_gamma}
    for name, published in PUBLISHED.items():
        assert fitted[name] == pytest.approx(published, rel=0.01), name
    # the Gamma-Gamma independence assumption holds on CDNOW (Fader & Hardie report 0.11)
    assert fit.spend_frequency_corr == pytest.approx(0.11, abs=0.01)


def test_params_table_uses_the_contract_names(cdnow):
    _, fit = cdnow
    table = clv.params_table(fit)
    assert list(zip(table["model"], table["param"], strict=True)) == [
        ("bg_nbd", "r"), ("bg_nbd", "alpha"), ("bg_nbd", "a"), ("bg_nbd", "b"),
        ("gamma_gamma", "p"), ("gamma_gamma", "q"), ("gamma_gamma", "gamma")]
    assert set(table["time_unit"]) == {"week"}


def test_purchase_summary_conventions():
    days = pd.DataFrame({
        "user_key": ["a", "a", "a", "a", "b", "c"],
        "purchase_date": ["2026-01-01", "2026-01-01", "2026-01-11", "2026-01-31",
                          "2026-02-03", "2026-02-11"],
        "amount": [10.0, 5.0, 20.0, 40.0, 7.0, 99.0],
    })
    s = clv.purchase_summary(days, "2026-02-10").set_index("user_key")
    assert list(s.index) == ["a", "b"]  # c bought after the as-of date
    # a: first day merges two orders; repeats on day 10 and 30; as-of is day 40
    assert s.loc["a", ["frequency", "recency", "T", "monetary_value"]].tolist() == [2, 30, 40,
                                                                                   30.0]
    assert s.loc["b", ["frequency", "recency", "T", "monetary_value"]].tolist() == [0, 0, 7, 0.0]
    weeks = clv.purchase_summary(days, "2026-02-10", "week").set_index("user_key")
    assert weeks.loc["a", "T"] == pytest.approx(40 / 7)


def test_purchase_summary_of_nothing_is_empty():
    empty = pd.DataFrame({"user_key": [], "purchase_date": [], "amount": []})
    summary = clv.purchase_summary(empty, "2026-01-01")
    assert summary.empty and list(summary.columns) == clv.SUMMARY_COLUMNS
    # it joins to people's string keys like a non-empty summary does
    people = pd.DataFrame({"user_key": ["p_1"]})
    assert people.merge(summary, on="user_key", how="left")["frequency"].isna().all()


def _bg_nbd_closed_form(r, alpha, a, b, x, t_x, T, t):
    """Fader, Hardie & Lee (2005), equations (10) and (13 in the note): P(alive) and the
    expected number of purchases in (T, T + t]."""
    d = 1.0 if x > 0 else 0.0
    odds = d * a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x)
    p_alive = 1.0 / (1.0 + odds)
    z = t / (alpha + T + t)
    head = (a + b + x - 1) / (a - 1)
    body = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
    return p_alive, head * body / (1.0 + odds)


def test_predictions_match_the_closed_form_for_a_few_people(cdnow):
    summary, fit = cdnow
    pred = clv.predict(fit, summary, horizon_months=12, annual_discount_rate=0.0)
    bg, gg = fit.bg_nbd, fit.gamma_gamma
    t = 12 * 30 / 7  # the horizon in weeks
    picks = pred.sort_values("frequency").iloc[[0, 1500, 2000, 2300, 2356]]
    assert picks["frequency"].iloc[0] == 0 and picks["frequency"].iloc[-1] > 5
    for row in picks.itertuples():
        p_alive, purchases = _bg_nbd_closed_form(bg["r"], bg["alpha"], bg["a"], bg["b"],
                                                 row.frequency, row.recency, row.T, t)
        assert row.p_alive == pytest.approx(p_alive, rel=1e-6)
        assert row.expected_purchases == pytest.approx(purchases, rel=1e-6)
        # Gamma-Gamma conditional mean; frequency 0 gives the population mean p v / (q - 1)
        spend = gg["p"] * (gg["v"] + row.frequency * row.monetary_value) / (
            gg["p"] * row.frequency + gg["q"] - 1)
        assert row.expected_avg_order_value == pytest.approx(spend, rel=1e-6)
    zero = pred[pred["frequency"] == 0]
    assert zero["expected_avg_order_value"].notna().all() and zero["clv"].gt(0).all()


def test_clv_is_monthly_purchases_times_spend_discounted(cdnow):
    summary, fit = cdnow
    one = summary.iloc[[0]]
    undiscounted = clv.predict(fit, one, 12, 0.0).iloc[0]
    discounted = clv.predict(fit, one, 12, 0.10).iloc[0]
    bg = fit.bg_nbd
    monthly = 1.10 ** (1 / 12) - 1
    cumulative = [_bg_nbd_closed_form(bg["r"], bg["alpha"], bg["a"], bg["b"], one["frequency"]
                                      .iloc[0], one["recency"].iloc[0], one["T"].iloc[0],
                                      m * 4.345)[1] for m in range(13)]
    expected = sum((cumulative[m] - cumulative[m - 1]) / (1 + monthly) ** m
                   for m in range(1, 13)) * discounted["expected_avg_order_value"]
    assert discounted["clv"] == pytest.approx(expected, rel=1e-6)
    assert discounted["clv"] < undiscounted["clv"]


def test_value_tiers_split_by_share():
    tiers = clv.value_tiers(pd.Series(np.arange(10.0)), high_share=0.2, medium_share=0.3)
    assert tiers.tolist() == ["low"] * 5 + ["medium"] * 3 + ["high"] * 2
    assert clv.value_tiers(pd.Series([], dtype=float), 0.2, 0.3).empty


def test_holdout_check_on_cdnow(cdnow):
    result = clv.holdout_check(cdnow_purchase_days(), "1998-06-30", 273, "week")
    assert result["cutoff_date"] == CALIBRATION_END
    assert result["customers"] == 2357
    groups = result["by_frequency"]
    assert groups["frequency_label"].tolist() == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert groups["customers"].sum() == 2357
    # the model tracks the holdout: total within 15%, and more past purchases, more future ones
    assert abs(result["total_error_pct"]) < 15
    assert groups["predicted"].is_monotonic_increasing


def test_too_little_history_is_a_clear_error():
    days = pd.DataFrame({"user_key": ["a", "a", "b"],
                         "purchase_date": ["2026-01-01", "2026-01-05", "2026-01-03"],
                         "amount": [1.0, 2.0, 3.0]})
    with pytest.raises(clv.ClvFitError, match="1 people with a repeat purchase"):
        clv.fit(clv.purchase_summary(days, "2026-02-01"))


def test_predicting_partitions_gives_the_same_answers_as_predicting_everyone(cdnow):
    summary, fit = cdnow
    whole = clv.predict(fit, summary, 12, 0.10)
    parts = pd.concat([clv.predict(fit, part, 12, 0.10)
                       for part in (summary.iloc[:500], summary.iloc[500:1700],
                                    summary.iloc[1700:])])
    pd.testing.assert_frame_equal(parts, whole)


def test_the_holdout_check_reruns_weekly_and_for_earlier_dates():
    from orchestration.value_assets import holdout_check_due

    day = dt.date(2026, 11, 21)
    assert holdout_check_due(None, day, 7)
    assert not holdout_check_due(day, day, 7)
    assert not holdout_check_due(day - dt.timedelta(days=6), day, 7)
    assert holdout_check_due(day - dt.timedelta(days=7), day, 7)
    # a backfill of an earlier date does not take a check that saw later data
    assert holdout_check_due(day + dt.timedelta(days=1), day, 7)
    assert holdout_check_due(day, day, 1) is False and holdout_check_due(
        day - dt.timedelta(days=1), day, 1)


def test_a_stored_fit_scores_as_the_fit_it_was_stored_from(cdnow):
    summary, fit = cdnow
    stored = clv.stored_fit(clv.params_table(fit).sample(frac=1.0, random_state=1))
    assert (stored.bg_nbd, stored.gamma_gamma, stored.time_unit, stored.customers,
            stored.repeat_customers) == (fit.bg_nbd, fit.gamma_gamma, "week", 2357, 946)
    pd.testing.assert_frame_equal(clv.predict(stored, summary, 12, 0.10),
                                  clv.predict(fit, summary, 12, 0.10))
    with pytest.raises(ValueError, match="lack gamma_gamma.v"):
        clv.stored_fit(clv.params_table(fit).query("param != 'gamma'"))


def test_a_stored_clv_fit_stands_a_week_unless_the_buyers_moved(cdnow):
    _, fit = cdnow  # 2357 buyers, 946 repeat buyers, in weeks
    day = dt.date(2026, 11, 21)

    def decide(fitted_on, customers=2357, repeat=946, unit="week", every=7, min_repeat=20):
        return clv.refit_decision(fit, fitted_on, day, customers, repeat, unit, every, 0.05,
                                  min_repeat)

    assert decide(day) == (False, "the fit of 2026-11-21 (0 days old) stands: buyers 2,357 "
                                  "-> 2,357, repeat buyers 946 -> 946")
    assert not decide(day - dt.timedelta(days=6), customers=2470, repeat=990)[0]  # +4.8%, +4.7%
    assert clv.refit_decision(None, None, day, 1, 1, "day", 7, 0.05, 20) == (True, "no stored fit")
    refits = {
        "old": decide(day - dt.timedelta(days=7)),
        "backfill": decide(day + dt.timedelta(days=1)),
        "buyers": decide(day, customers=2476),
        "repeat": decide(day, repeat=898),
        "unit": decide(day, unit="day"),
        "daily": decide(day - dt.timedelta(days=1), every=1),
        "too few": decide(day, min_repeat=1000),
    }
    assert all(refit for refit, _ in refits.values())
    assert refits["old"][1] == "the stored fit is 7 days old (refit every 7)"
    assert "after this run's date" in refits["backfill"][1]
    assert refits["buyers"][1].startswith("buyers changed by 5.0% since the fit (2,357 -> 2,476")
    assert refits["repeat"][1].startswith("repeat buyers changed by 5.1%")


@pytest.mark.parametrize("discount", [0.0, 0.10])
def test_predictions_equal_pymc_marketings_own(cdnow, discount):
    # ml.clv computes on arrays what pymc-marketing's xarray methods compute
    from pymc_marketing.clv.utils import customer_lifetime_value

    summary, fit = cdnow
    frame = clv._model_frame(summary)
    pred = clv.predict(fit, summary, 12, discount)
    horizon = 12 * 30 / 7

    def values(x):
        return np.asarray(x).reshape(-1)

    np.testing.assert_allclose(pred["p_alive"], values(
        fit.bg_model.expected_probability_alive(data=frame)), rtol=1e-10)
    np.testing.assert_allclose(pred["expected_purchases"], values(
        fit.bg_model.expected_purchases(data=frame, future_t=horizon)), rtol=1e-10)
    spend = values(fit.gg_model.expected_customer_spend(data=frame.assign(
        monetary_value=np.where(frame["frequency"] > 0, frame["monetary_value"], 0.0))))
    np.testing.assert_allclose(pred["expected_avg_order_value"], spend, rtol=1e-10)
    monthly = 1.10 ** (1 / 12) - 1 if discount else 0.0
    np.testing.assert_allclose(pred["clv"], values(customer_lifetime_value(
        fit.bg_model, frame.assign(future_spend=spend), future_t=12, discount_rate=monthly,
        time_unit="W")), rtol=1e-9)


def test_user_clv_has_everyone_with_their_scores_or_nothing_expected():
    """marts.user_clv joins every person with the buyers' scores: a buyer keeps theirs, a
    buyer the fit could not score keeps blanks, someone without an order expects nothing."""
    from orchestration.value_assets import USER_CLV_COLUMNS, write_user_clv

    con = duckdb.connect()
    con.execute("create schema intermediate; create schema marts")
    con.execute("create table intermediate.int_user_profile as "
                "select * from (values ('ana'), ('bo'), ('cy')) as people(user_key)")
    buyers = pd.DataFrame({
        "user_key": ["ana", "cy"], "frequency": [2, 0], "recency_days": [30, 0],
        "tenure_days": [90, 10], "monetary_value": [25.0, 0.0],
        "first_purchase_date": pd.to_datetime(["2026-01-01", "2026-03-21"]).date,
        "last_purchase_date": pd.to_datetime(["2026-01-31", "2026-03-21"]).date,
        "p_alive": [0.8, np.nan], "expected_purchases": [1.5, np.nan],
        "expected_avg_order_value": [26.0, np.nan], "clv": [39.0, np.nan],
        "value_tier": ["high", "unknown"]})
    write_user_clv(con, buyers, dt.date(2026, 3, 31))
    rows = con.execute("select * from marts.user_clv order by user_key").fetchall()
    columns = [c for c, *_ in con.execute("describe marts.user_clv").fetchall()]
    assert columns == list(USER_CLV_COLUMNS)
    assert [dict(zip(columns, r, strict=True)) for r in rows] == [
        {"user_key": "ana", "as_of_date": dt.date(2026, 3, 31), "frequency": 2,
         "recency_days": 30, "tenure_days": 90, "monetary_value": 25.0,
         "first_purchase_date": dt.date(2026, 1, 1), "last_purchase_date": dt.date(2026, 1, 31),
         "p_alive": 0.8, "expected_purchases": 1.5, "expected_avg_order_value": 26.0,
         "clv": 39.0, "value_tier": "high"},
        {"user_key": "bo", "as_of_date": dt.date(2026, 3, 31), "frequency": None,
         "recency_days": None, "tenure_days": None, "monetary_value": None,
         "first_purchase_date": None, "last_purchase_date": None, "p_alive": None,
         "expected_purchases": 0.0, "expected_avg_order_value": None, "clv": 0.0,
         "value_tier": "no_purchase"},
        {"user_key": "cy", "as_of_date": dt.date(2026, 3, 31), "frequency": 0,
         "recency_days": 0, "tenure_days": 10, "monetary_value": 0.0,
         "first_purchase_date": dt.date(2026, 3, 21), "last_purchase_date": dt.date(2026, 3, 21),
         "p_alive": None, "expected_purchases": None, "expected_avg_order_value": None,
         "clv": None, "value_tier": "unknown"}]
