"""Win-back targeting: learned return rates with their prior, offers per reason, budget, and
consent (nobody without it is ever targeted)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml import winback
from orchestration.config import UlmConfig

OFFERS = {k: v.model_dump() for k, v in UlmConfig().winback.offers.items()}
COSTS = {"email": 0.05, "sms": 0.12, "push": 0.01, "phone": 4.0, "coupon": 2.5}
AS_OF = "2026-06-30"


def outcomes(rows) -> pd.DataFrame:
    """rows: (channel, reason, group, contacted, returned, cost each)."""
    out = []
    for channel, reason, group, n, k, cost in rows:
        out += [{"channel": channel, "reason": reason, "touch_group": group,
                 "returned": i < k, "cost": cost, "window_complete": True} for i in range(n)]
    return pd.DataFrame(out)


def candidate(**overrides) -> dict:
    base = {"user_key": "p1", "lifecycle_stage": "churned", "is_reachable": True,
            "reason": "not_stated", "reason_source": "none", "last_contacted_date": None,
            "churn_probability": None, "churn_risk_tier": None, "clv": 40.0, "p_alive": 0.2}
    return {**base, **overrides}


def test_return_rates_shrink_towards_channel_then_prior():
    hist = outcomes([("email", "price", "treatment", 10, 5, 0.05),
                     ("email", "not_stated", "treatment", 90, 15, 0.05),
                     ("email", "price", "control", 40, 40, 0.0)])  # control never counts
    rates = winback.return_rates(hist, prior_rate=0.05, prior_strength=50).set_index(
        ["channel", "reason"])
    channel_rate = (20 + 50 * 0.05) / (100 + 50)  # 0.15
    assert rates.loc[("email", "price"), "channel_rate"] == pytest.approx(channel_rate)
    assert rates.loc[("email", "price"), "p_return"] == pytest.approx(
        (5 + 50 * channel_rate) / (10 + 50))
    assert rates.loc[("email", "not_stated"), "contacted"] == 90


def test_open_windows_do_not_teach_return_rates():
    hist = outcomes([("sms", "price", "treatment", 10, 0, 0.1)]).assign(window_complete=False)
    assert winback.return_rates(hist, 0.05, 50).empty


def test_lookup_falls_back_from_segment_to_channel_to_prior():
    rates = winback.return_rates(outcomes([("email", "price", "treatment", 10, 5, 0.05)]),
                                 0.05, 50)
    p, source = winback.lookup_return_probability(
        pd.Series(["email", "email", "phone"]), pd.Series(["price", "service", "service"]),
        rates, prior_rate=0.05)
    assert source.tolist() == ["segment", "channel", "prior"]
    assert p[2] == 0.05 and p[1] == pytest.approx((5 + 2.5) / 60)


def test_offers_follow_the_stated_reason():
    rec = winback.recommend(pd.Series(["price", "Service", "no_need", "martian"]), OFFERS)
    assert rec.values.tolist() == [["discount_20pct", "coupon"], ["service_call", "phone"],
                                   ["whats_new_message", "email"], ["come_back_message", "email"]]


def test_history_costs_replace_configured_costs_once_there_is_enough():
    hist = outcomes([("coupon", "price", "treatment", 40, 1, 3.0),
                     ("sms", "price", "treatment", 5, 1, 9.0)])
    costs = winback.channel_costs(hist, COSTS)
    assert costs["coupon"] == 3.0 and costs["sms"] == 0.12


def test_expected_value_ranking_and_budget():
    cands = pd.DataFrame([
        candidate(user_key="a", clv=10.0, p_alive=0.1),       # value if returned 100
        candidate(user_key="b", clv=50.0, p_alive=1.0),       # 50
        candidate(user_key="c", clv=0.5, p_alive=0.5),        # 1: EV 0.05 - 0.05 = 0 -> out
        candidate(user_key="d", clv=30.0, p_alive=0.5, reason="price"),  # coupon 2.5
    ])
    chosen, _ = winback.targets(cands, pd.DataFrame(), AS_OF, budget=2.5, offers=OFFERS,
                                configured_costs=COSTS, prior_rate=0.05, prior_strength=50)
    # EVs: a 0.05*100-0.05=4.95, d 0.05*60-2.5=0.5, b 0.05*50-0.05=2.45
    assert chosen["user_key"].tolist() == ["a", "b"]  # d would take the cost to 2.6
    assert chosen["priority_rank"].tolist() == [1, 2]
    assert chosen["expected_value"].tolist() == pytest.approx([4.95, 2.45])
    assert chosen["cumulative_cost"].iloc[-1] <= 2.5
    everything, _ = winback.targets(cands, pd.DataFrame(), AS_OF, 100.0, OFFERS, COSTS,
                                    0.05, 50)
    assert everything["user_key"].tolist() == ["a", "b", "d"]
    assert everything.set_index("user_key").loc["d", "recommended_offer"] == "discount_20pct"


def test_only_reachable_churned_or_high_risk_people_outside_the_cooldown():
    cands = pd.DataFrame([
        candidate(user_key="churned"),
        candidate(user_key="high_risk", lifecycle_stage="active", churn_risk_tier="high"),
        candidate(user_key="low_risk", lifecycle_stage="active", churn_risk_tier="low"),
        candidate(user_key="no_consent", is_reachable=False),
        candidate(user_key="consent_unknown", is_reachable=None),
        candidate(user_key="just_contacted", last_contacted_date="2026-06-10"),
        candidate(user_key="contacted_long_ago", last_contacted_date="2026-01-10"),
    ])
    chosen, _ = winback.targets(cands, pd.DataFrame(), AS_OF, 1e9, OFFERS, COSTS, 0.05, 50,
                                include_high_risk=True, cooldown_days=30)
    assert sorted(chosen["user_key"]) == ["churned", "contacted_long_ago", "high_risk"]
    only_churned, _ = winback.targets(cands, pd.DataFrame(), AS_OF, 1e9, OFFERS, COSTS, 0.05,
                                      50, include_high_risk=False, cooldown_days=30)
    assert "high_risk" not in set(only_churned["user_key"])


def test_nobody_without_consent_is_ever_targeted():
    rng = np.random.default_rng(3)
    n = 2_000
    cands = pd.DataFrame({
        "user_key": [f"p{i}" for i in range(n)],
        "lifecycle_stage": rng.choice(["churned", "active", "dormant"], n),
        "is_reachable": rng.choice([True, False, None], n),
        "reason": rng.choice(["price", "service", "not_stated"], n),
        "reason_source": "stated", "last_contacted_date": None,
        "churn_probability": rng.random(n), "churn_risk_tier": rng.choice(["high", "low"], n),
        "clv": rng.gamma(2, 50, n), "p_alive": rng.random(n),
    })
    chosen, _ = winback.targets(cands, pd.DataFrame(), AS_OF, 1e9, OFFERS, COSTS, 0.05, 50)
    reachable = set(cands.loc[cands["is_reachable"].eq(True), "user_key"])
    assert len(chosen) > 100
    assert set(chosen["user_key"]) <= reachable


def test_no_candidates_gives_an_empty_list_with_the_contract_columns():
    chosen, rates = winback.targets(pd.DataFrame([candidate(is_reachable=False)]),
                                    pd.DataFrame(), AS_OF, 10, OFFERS, COSTS, 0.05, 50)
    assert chosen.empty and list(chosen.columns) == winback.TARGET_COLUMNS
