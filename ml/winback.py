"""Win-back targeting: whom to contact, with what, and whether it pays.

expected_value = P(return if contacted) x value if they return - cost of the contact.

- P(return if contacted) is learned from past campaigns' treated people, per (channel,
  reason), shrunk towards the channel's rate and that towards a documented prior
  (empirical Bayes with `prior_strength` pseudo-contacts): a segment with little history
  stays near the prior, one with a lot follows its data.
- Value if they return: the person's CLV divided by their probability of being alive. The
  BG/NBD expectation already multiplies by P(alive); someone who comes back is alive, so
  dividing it out avoids counting their churn twice.
- Cost: the mean cost per treated touch of the channel in past campaigns, or the configured
  channel cost where there is no history.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

TARGET_COLUMNS = [
    "user_key", "priority_rank", "lifecycle_stage", "churn_probability", "churn_risk_tier",
    "clv", "value_if_returned", "p_return", "p_return_source", "reason", "reason_source",
    "recommended_offer", "channel", "cost", "expected_value", "cumulative_cost",
]
MIN_COST_HISTORY = 30  # treated touches of a channel before their mean cost replaces config


def return_rates(outcomes: pd.DataFrame, prior_rate: float, prior_strength: float
                 ) -> pd.DataFrame:
    """Per (channel, reason) of past treated people with a complete return window: contacted,
    returned, and the shrunk probability of return. `channel_rate` is the channel's own
    shrunk rate; a (channel, reason) seen nowhere falls back to it, an unseen channel to the
    prior."""
    cols = ["channel", "reason", "contacted", "returned", "p_return", "channel_rate"]
    if outcomes.empty:
        return pd.DataFrame(columns=cols)
    treated = outcomes[(outcomes["touch_group"] == "treatment") & outcomes["window_complete"]]
    if treated.empty:
        return pd.DataFrame(columns=cols)
    by_channel = treated.groupby("channel").agg(contacted=("returned", "size"),
                                                returned=("returned", "sum"))
    channel_rate = ((by_channel["returned"] + prior_strength * prior_rate)
                    / (by_channel["contacted"] + prior_strength))
    seg = (treated.groupby(["channel", "reason"])
           .agg(contacted=("returned", "size"), returned=("returned", "sum")).reset_index())
    seg["channel_rate"] = seg["channel"].map(channel_rate)
    seg["p_return"] = ((seg["returned"] + prior_strength * seg["channel_rate"])
                       / (seg["contacted"] + prior_strength))
    return seg[cols]


def channel_costs(outcomes: pd.DataFrame, configured: Mapping[str, float]) -> dict[str, float]:
    """Mean cost per treated person by channel where history has enough of them, else the
    configured cost."""
    costs = dict(configured)
    if outcomes.empty:
        return costs
    treated = outcomes[outcomes["touch_group"] == "treatment"]
    stats = treated.groupby("channel")["cost"].agg(["size", "mean"])
    for channel, row in stats.iterrows():
        if row["size"] >= MIN_COST_HISTORY:
            costs[channel] = float(row["mean"])
    return costs


def recommend(reasons: pd.Series, offers: Mapping[str, Mapping[str, str]]) -> pd.DataFrame:
    """Offer and channel for each reason; a reason without a rule gets `default`."""
    rule = reasons.str.lower().map(lambda r: offers.get(r, offers["default"]))
    return pd.DataFrame({"recommended_offer": [r["offer"] for r in rule],
                         "channel": [r["channel"] for r in rule]}, index=reasons.index)


def lookup_return_probability(channel: pd.Series, reason: pd.Series, rates: pd.DataFrame,
                              prior_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """P(return if contacted) for each (channel, reason), and where it came from:
    `segment` (that channel and reason), `channel` (that channel, another reason) or
    `prior` (no history for the channel)."""
    key = pd.MultiIndex.from_arrays([channel.to_numpy(), reason.to_numpy()])
    seg = rates.set_index(["channel", "reason"])["p_return"] if len(rates) else pd.Series(
        dtype="float64")
    by_channel = rates.groupby("channel")["channel_rate"].first() if len(rates) else pd.Series(
        dtype="float64")
    p_seg = seg.reindex(key).to_numpy(dtype="float64") if len(seg) else np.full(len(key), np.nan)
    p_chan = channel.map(by_channel).to_numpy(dtype="float64") if len(by_channel) else \
        np.full(len(key), np.nan)
    source = np.where(~np.isnan(p_seg), "segment", np.where(~np.isnan(p_chan), "channel",
                                                            "prior"))
    p = np.where(~np.isnan(p_seg), p_seg, np.where(~np.isnan(p_chan), p_chan, prior_rate))
    return p, source


def eligible(candidates: pd.DataFrame, as_of: str, include_high_risk: bool,
             cooldown_days: int) -> pd.DataFrame:
    """Reachable people (consent given, not withdrawn) who are churned, or at high churn risk
    when asked for, and were not contacted within the cooldown."""
    as_of = pd.Timestamp(as_of)
    c = candidates
    wanted = c["lifecycle_stage"].eq("churned")
    if include_high_risk:
        wanted |= c["churn_risk_tier"].eq("high")
    last = pd.to_datetime(c["last_contacted_date"])
    cooled = last.isna() | (last < as_of - pd.Timedelta(days=cooldown_days))
    reachable = c["is_reachable"].fillna(False).astype(bool)
    return c[wanted.fillna(False).astype(bool) & cooled & reachable]


def targets(candidates: pd.DataFrame, outcomes: pd.DataFrame, as_of: str, budget: float,
            offers: Mapping[str, Mapping[str, str]], configured_costs: Mapping[str, float],
            prior_rate: float, prior_strength: float, include_high_risk: bool = True,
            cooldown_days: int = 30) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ranked target list within budget, and the learned return rates behind it.

    candidates: user_key, lifecycle_stage, is_reachable, reason, reason_source,
    last_contacted_date, churn_probability, churn_risk_tier, clv, p_alive.
    outcomes: int_campaign_outcomes plus `window_complete`."""
    rates = return_rates(outcomes, prior_rate, prior_strength)
    people = eligible(candidates, as_of, include_high_risk, cooldown_days).copy()
    if people.empty:
        return pd.DataFrame(columns=TARGET_COLUMNS), rates
    people = people.join(recommend(people["reason"], offers))
    costs = channel_costs(outcomes, configured_costs)
    people["cost"] = people["channel"].map(costs).astype("float64")
    people["p_return"], people["p_return_source"] = lookup_return_probability(
        people["channel"], people["reason"], rates, prior_rate)
    clv = people["clv"].astype("float64").fillna(0.0)
    p_alive = people["p_alive"].astype("float64")
    people["value_if_returned"] = np.where(p_alive > 1e-12, clv / p_alive, 0.0)
    people["expected_value"] = people["p_return"] * people["value_if_returned"] - people["cost"]
    ranked = (people[people["expected_value"] > 0]
              .sort_values(["expected_value", "user_key"], ascending=[False, True]))
    ranked["cumulative_cost"] = ranked["cost"].cumsum()
    chosen = ranked[ranked["cumulative_cost"] <= budget + 1e-9].copy()
    chosen["priority_rank"] = np.arange(1, len(chosen) + 1)
    return chosen[TARGET_COLUMNS].reset_index(drop=True), rates
