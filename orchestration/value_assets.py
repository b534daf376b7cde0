"""Dagster assets for value and win-back: wiring only; the work is in ml/clv.py and
ml/winback.py. Tables go to the working database's `marts` schema and are published with
the rest."""

import base64
import datetime as dt
import time

import dagster as dg
import numpy as np
import pandas as pd

from ml import clv, reports, winback
from orchestration.assets import RunDate, _model_key
from orchestration.churn_assets import SCORES_KEY
from orchestration.config import ClvConfig
from orchestration.dbt_args import resolve_as_of
from orchestration.resources import UlmSettings
from orchestration.tables import replace_table

CLV_KEY = dg.AssetKey(["ml", "user_clv"])
WINBACK_KEY = dg.AssetKey(["ml", "winback_targets"])

USER_CLV_COLUMNS = {
    "user_key": "varchar", "as_of_date": "date", "frequency": "integer",
    "recency_days": "integer", "tenure_days": "integer", "monetary_value": "double",
    "first_purchase_date": "date", "last_purchase_date": "date", "p_alive": "double",
    "expected_purchases": "double", "expected_avg_order_value": "double", "clv": "double",
    "value_tier": "varchar",
}
PARAMS_COLUMNS = {
    "as_of_date": "date", "model": "varchar", "param": "varchar", "value": "double",
    "time_unit": "varchar", "customers": "integer", "repeat_customers": "integer",
    "spend_frequency_corr": "double", "fitted_on": "date",
}
HOLDOUT_COLUMNS = {
    "as_of_date": "date", "cutoff_date": "date", "frequency_label": "varchar",
    "customers": "integer", "predicted": "double", "actual": "double",
}
TARGETS_COLUMNS = {
    "user_key": "varchar", "as_of_date": "date", "priority_rank": "integer",
    "lifecycle_stage": "varchar", "churn_probability": "double", "churn_risk_tier": "varchar",
    "clv": "double", "value_if_returned": "double", "p_return": "double",
    "p_return_source": "varchar", "reason": "varchar", "reason_source": "varchar",
    "recommended_offer": "varchar", "channel": "varchar", "cost": "double",
    "expected_value": "double", "cumulative_cost": "double",
}
RATES_COLUMNS = {
    "as_of_date": "date", "channel": "varchar", "reason": "varchar", "contacted": "integer",
    "returned": "integer", "p_return": "double", "channel_rate": "double",
}


def _read(ulm: UlmSettings, sql: str) -> pd.DataFrame:
    with ulm.connect_work(read_only=True) as con:
        return con.execute(sql).df()


def _png_md(title: str, png: bytes) -> dg.MetadataValue:
    return dg.MetadataValue.md(
        f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})")


def _purchase_days(ulm: UlmSettings) -> pd.DataFrame:
    return _read(ulm, "select user_key, purchase_date, amount "
                      "from intermediate.int_purchase_days")


def _purchase_summary(ulm: UlmSettings) -> pd.DataFrame:
    """The buyers' summary (int_purchase_summary), named as ml.clv.purchase_summary names it."""
    return _read(ulm, 'select user_key, frequency, recency_days as recency, tenure_days as "T", '
                      "monetary_value, first_purchase_date, last_purchase_date "
                      "from intermediate.int_purchase_summary order by user_key")


def _stored_fit(ulm: UlmSettings) -> tuple[clv.ClvFit | None, dt.date | None]:
    """The last run's CLV parameters and the as-of date they were fitted on; (None, None)
    when there are none (first run, a run that could not fit, a table from before
    `fitted_on`)."""
    with ulm.connect_work(read_only=True) as con:
        columns = {r[0] for r in con.execute(
            "select column_name from information_schema.columns where table_schema = 'marts' "
            "and table_name = 'clv_model_params'").fetchall()}
        if "fitted_on" not in columns:
            return None, None
        params = con.execute("select * from marts.clv_model_params").df()
    if params.empty or params["fitted_on"].nunique() != 1:
        return None, None
    try:
        return clv.stored_fit(params), pd.Timestamp(params["fitted_on"].iloc[0]).date()
    except ValueError:
        return None, None


def _fit(context: dg.AssetExecutionContext, ulm: UlmSettings, c: ClvConfig,
         summary: pd.DataFrame, as_of: dt.date, metadata: dict) -> tuple[clv.ClvFit, dt.date]:
    """The CLV fit to score with and the date it was fitted on: the stored one while
    `clv.refit_every_days` and `clv.refit_max_change` let it stand, else a new fit (raises
    ClvFitError when there is too little history)."""
    stored, fitted_on = _stored_fit(ulm)
    refit, why = clv.refit_decision(stored, fitted_on, as_of, len(summary),
                                    clv.repeat_customers(summary), "day", c.refit_every_days,
                                    c.refit_max_change, c.min_repeat_customers)
    metadata.update({"refitted": refit, "refit_reason": why})
    if not refit:
        context.log.info(f"CLV scored with stored parameters: {why}")
        return stored, fitted_on
    started = time.perf_counter()
    fit = clv.fit(summary, "day", c.min_repeat_customers)
    metadata["fit_seconds"] = round(time.perf_counter() - started, 2)
    context.log.info(f"CLV fitted on {len(summary):,} buyers in {metadata['fit_seconds']}s "
                     f"({why}): BG/NBD {fit.bg_nbd}, Gamma-Gamma {fit.gamma_gamma}")
    return fit, as_of


@dg.asset(key=CLV_KEY, deps=[_model_key("int_purchase_summary"), _model_key("int_user_profile")],
          group_name="value", kinds={"python", "pymc"})
def user_clv(context: dg.AssetExecutionContext, ulm: UlmSettings, config: RunDate):
    """Every person's CLV: BG/NBD + Gamma-Gamma fitted by maximum likelihood on the completed
    orders up to the as-of date (again once the stored fit is `clv.refit_every_days` old or
    the buyers moved by more than `clv.refit_max_change`; in between today's purchases are
    scored with the stored parameters); probability alive, expected purchases and order
    value over the horizon, discounted CLV and value tier. People without an order get tier
    `no_purchase`; with one order only, the models' population-level answer."""
    cfg = ulm.load_config()
    as_of = resolve_as_of(config.as_of, cfg.business_timezone)
    c = cfg.clv
    clv.use_compile_dir()
    summary = _purchase_summary(ulm)
    metadata: dict = {"buyers": len(summary)}
    try:
        fit, fitted_on = _fit(context, ulm, c, summary, pd.Timestamp(as_of).date(), metadata)
        started = time.perf_counter()
        scored = clv.predict(fit, summary, c.horizon_months, c.annual_discount_rate)
        scored["value_tier"] = clv.value_tiers(scored["clv"], c.high_value_share,
                                               c.medium_value_share)
        params = clv.params_table(fit).assign(fitted_on=fitted_on)
        metadata.update({
            "fitted_on": str(fitted_on),
            "score_seconds": round(time.perf_counter() - started, 2),
            "repeat_customers": fit.repeat_customers,
            "bg_nbd": dg.MetadataValue.json({k: round(v, 6) for k, v in fit.bg_nbd.items()}),
            "gamma_gamma": dg.MetadataValue.json(
                {k: round(v, 6) for k, v in fit.gamma_gamma.items()}),
            "spend_frequency_corr": round(fit.spend_frequency_corr, 4),
            "total_clv": float(scored["clv"].sum()),
        })
        if abs(fit.spend_frequency_corr) > 0.3:
            context.log.warning(
                f"spend and frequency correlate ({fit.spend_frequency_corr:.2f}): the "
                "Gamma-Gamma assumption of independence is questionable for this data")
    except clv.ClvFitError as exc:
        context.log.warning(f"CLV not fitted: {exc}; clv stays null")
        scored = summary.assign(p_alive=np.nan, expected_purchases=np.nan,
                                expected_avg_order_value=np.nan, clv=np.nan,
                                value_tier="unknown")
        params = pd.DataFrame(columns=list(PARAMS_COLUMNS))
        metadata["not_fitted"] = str(exc)
    params = params.assign(as_of_date=pd.Timestamp(as_of).date())
    with ulm.connect_work() as con:
        write_user_clv(con, scored.rename(columns={"recency": "recency_days",
                                                   "T": "tenure_days"}),
                       pd.Timestamp(as_of).date())
        replace_table(con, "marts.clv_model_params", params, PARAMS_COLUMNS)
        tiers = con.execute("select value_tier, count(*) from marts.user_clv "
                            "group by value_tier order by value_tier").fetchall()
    metadata["people"] = sum(n for _, n in tiers)
    metadata["tiers"] = dg.MetadataValue.json({str(k): int(v) for k, v in tiers})
    return dg.MaterializeResult(metadata=metadata)


def write_user_clv(con, buyers: pd.DataFrame, as_of: dt.date) -> None:
    """marts.user_clv: everyone in int_user_profile with the buyers' scores; someone without
    an order expects nothing (0 purchases, CLV 0) and is `no_purchase`. Joined in DuckDB:
    reading every person into pandas and merging them with the buyers on their string keys
    took ~1.5 s of the step at a million people."""
    no_order = "buyers.user_key is null"
    values = {
        "user_key": "people.user_key",
        "as_of_date": "?",
        "expected_purchases": f"case when {no_order} then 0.0 else buyers.expected_purchases end",
        "clv": f"case when {no_order} then 0.0 else buyers.clv end",
        "value_tier": f"case when {no_order} then 'no_purchase' else buyers.value_tier end",
    }
    select = ", ".join(f"cast({values.get(name, 'buyers.' + name)} as {kind}) as {name}"
                       for name, kind in USER_CLV_COLUMNS.items())
    con.register("_buyers", buyers)
    try:
        con.execute(f"create or replace table marts.user_clv as select {select} "
                    "from intermediate.int_user_profile as people "
                    "left join _buyers as buyers on people.user_key = buyers.user_key", [as_of])
    finally:
        con.unregister("_buyers")


def holdout_check_due(last_checked: dt.date | None, as_of: dt.date, every_days: int) -> bool:
    """The stored holdout check stands while it is younger than `every_days` and not from a
    later date than this run's (a backfill of an earlier date checks again)."""
    if last_checked is None:
        return True
    return not 0 <= (as_of - last_checked).days < every_days


def _last_holdout_check(ulm: UlmSettings) -> dt.date | None:
    with ulm.connect_work(read_only=True) as con:
        exists = con.execute("select count(*) from information_schema.tables where "
                             "table_schema = 'marts' and table_name = 'clv_holdout_check'"
                             ).fetchone()[0]
        if not exists:
            return None
        return con.execute("select max(as_of_date) from marts.clv_holdout_check").fetchone()[0]


@dg.asset(deps=[_model_key("int_purchase_days")], group_name="value", kinds={"python", "pymc"})
def clv_holdout_check(context: dg.AssetExecutionContext, ulm: UlmSettings, config: RunDate):
    """Fit the CLV models on orders up to `clv.holdout_days` before the as-of date, predict
    the days after, compare with what happened: in total, per number of earlier repeat
    purchases, per person. Table `clv_holdout_check`, numbers and a plot here. Runs every
    `clv.holdout_check_every_days` (it is a second fit); between, the stored check stands."""
    cfg = ulm.load_config()
    as_of = resolve_as_of(config.as_of, cfg.business_timezone)
    c = cfg.clv
    last = _last_holdout_check(ulm)
    if not holdout_check_due(last, pd.Timestamp(as_of).date(), c.holdout_check_every_days):
        context.log.info(f"CLV holdout check of {last} stands (runs every "
                         f"{c.holdout_check_every_days} days)")
        return dg.MaterializeResult(metadata={"checked_on": str(last), "rerun": False})
    clv.use_compile_dir()
    try:
        result = clv.holdout_check(_purchase_days(ulm), as_of, c.holdout_days, "day",
                                   c.min_repeat_customers)
    except clv.ClvFitError as exc:
        context.log.warning(f"CLV holdout check skipped: {exc}")
        with ulm.connect_work() as con:
            replace_table(con, "marts.clv_holdout_check", pd.DataFrame(), HOLDOUT_COLUMNS)
        return dg.MaterializeResult(metadata={"skipped": str(exc)})
    groups = result["by_frequency"].assign(as_of_date=pd.Timestamp(as_of).date(),
                                           cutoff_date=pd.Timestamp(result["cutoff_date"]).date())
    with ulm.connect_work() as con:
        replace_table(con, "marts.clv_holdout_check", groups, HOLDOUT_COLUMNS)
    png = reports.clv_holdout_plot(result["by_frequency"], result["cutoff_date"],
                                   result["holdout_days"])
    table = "| repeat purchases before | people | predicted | actual |\n|---|---|---|---|\n"
    table += "\n".join(f"| {r.frequency_label} | {r.customers:,} | {r.predicted:.3f} | "
                       f"{r.actual:.3f} |" for r in result["by_frequency"].itertuples())
    context.log.info(
        f"CLV holdout ({result['cutoff_date']} + {result['holdout_days']}d): predicted "
        f"{result['predicted_total']:.0f} repeat purchases, actual {result['actual_total']:.0f} "
        f"({result['total_error_pct']:+.1f}%)")
    return dg.MaterializeResult(metadata={
        "checked_on": str(as_of), "rerun": True,
        "cutoff_date": result["cutoff_date"], "customers": result["customers"],
        "predicted_total": round(result["predicted_total"], 1),
        "actual_total": result["actual_total"],
        "total_error_pct": round(result["total_error_pct"], 2),
        "mae_per_person": round(result["mae_per_person"], 4),
        "rmse_per_person": round(result["rmse_per_person"], 4),
        "by_frequency": dg.MetadataValue.md(table),
        "plot": _png_md("CLV holdout check", png),
    })


@dg.asset(key=WINBACK_KEY, deps=[CLV_KEY, SCORES_KEY, _model_key("int_winback_candidates"),
                                 _model_key("int_campaign_outcomes")],
          group_name="value", kinds={"python"})
def winback_targets(context: dg.AssetExecutionContext, ulm: UlmSettings, config: RunDate):
    """Reachable people who churned or are at high churn risk, ranked by expected value of
    contacting them (probability of return if contacted x value if they return - cost), kept
    within the budget, each with an offer and a channel for their stated reason. The learned
    return rates behind it go to `winback_return_rates`."""
    cfg = ulm.load_config()
    as_of = resolve_as_of(config.as_of, cfg.business_timezone)
    w = cfg.winback
    # only people winback.eligible can choose (it filters again, with the cooldown): reading
    # every person took 1.38 s at a million people, these (412k) 0.42 s
    candidates = _read(ulm, """
        select c.*, s.churn_probability, s.churn_risk_tier, v.clv, v.p_alive
        from intermediate.int_winback_candidates as c
        left join marts.user_churn_scores as s using (user_key)
        left join marts.user_clv as v using (user_key)
        where c.is_reachable and (c.lifecycle_stage = 'churned' or s.churn_risk_tier = 'high')""")
    reachable = _read(ulm, "select count(*) filter (where is_reachable) as n "
                           "from intermediate.int_winback_candidates")["n"].iloc[0]
    outcomes = _read(ulm, f"""
        select *, days_observed >= {cfg.campaigns.return_window_days} as window_complete
        from intermediate.int_campaign_outcomes""")
    chosen, rates = winback.targets(
        candidates, outcomes, as_of, w.budget,
        {k: v.model_dump() for k, v in w.offers.items()}, w.channel_costs,
        w.prior_return_rate, w.prior_strength, w.include_high_risk, w.cooldown_days)
    day = pd.Timestamp(as_of).date()
    with ulm.connect_work() as con:
        replace_table(con, "marts.winback_targets", chosen.assign(as_of_date=day),
                      TARGETS_COLUMNS)
        replace_table(con, "marts.winback_return_rates", rates.assign(as_of_date=day),
                      RATES_COLUMNS)
    context.log.info(f"{len(chosen):,} win-back targets, cost {chosen['cost'].sum():.2f} of "
                     f"budget {w.budget:.2f}, expected value {chosen['expected_value'].sum():.2f}")
    by_offer = chosen.groupby(["recommended_offer", "channel"]).size() if len(chosen) else {}
    return dg.MaterializeResult(metadata={
        "targets": len(chosen), "cost": float(chosen["cost"].sum()),
        "budget": w.budget, "expected_value": float(chosen["expected_value"].sum()),
        "reachable_candidates": int(reachable),
        "by_offer": dg.MetadataValue.json({f"{o} via {c}": int(n)
                                           for (o, c), n in dict(by_offer).items()}),
    })
