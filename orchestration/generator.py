"""Demo data generator (`ulm generate`): a synthetic consumer business, written as raw files.

Every person follows a latent process: they are first seen (often anonymously), may sign up,
are active on some days with a weekly rhythm, churn after a time driven by engagement, price
sensitivity and bad experiences, and may come back, on their own or because a randomised
win-back campaign reached them. Everything is vectorised numpy, generated in chunks of
people so memory stays bounded, and deterministic per seed.

The raw files follow the contract (mixed CSV, Parquet and JSONL.gz, nested folders, messy
identifiers, small rates of realistic defects). The ground truth goes to a separate folder
(`truth/`) so tests can hold the product to it.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from orchestration.config import KNOWN_EVENT_TYPES

log = logging.getLogger(__name__)

DAY_S = 86_400
CANCEL_REASONS = np.array(["price", "quality", "competitor", "service", "no_need", "other"])
ACQ_CHANNELS = np.array(["organic", "paid_search", "social", "referral", "store", "email"])
ACQ_WEIGHTS = np.array([0.3, 0.2, 0.2, 0.1, 0.12, 0.08])
# (country, region, city, phone country code, utc offset hours, weight)
PLACES = [
    ("US", "California", "San Francisco", "1", -8, 0.14),
    ("US", "New York", "New York", "1", -5, 0.14),
    ("US", "Texas", "Austin", "1", -6, 0.08),
    ("CN", "北京", "北京", "86", 8, 0.12),
    ("CN", "上海", "上海", "86", 8, 0.12),
    ("CN", "广东", "深圳", "86", 8, 0.08),
    ("DE", "Bayern", "München", "49", 1, 0.08),
    ("GB", "England", "London", "44", 0, 0.08),
    ("FR", "Île-de-France", "Paris", "33", 1, 0.06),
    ("JP", "東京都", "東京", "81", 9, 0.06),
    ("BR", "São Paulo", "São Paulo", "55", -3, 0.04),
]
FIRST_NAMES = np.array(
    ["Anna", "Ben", "Chloé", "David", "Émile", "Fatima", "Günter", "Hana", "Ivan", "José",
     "Zoë", "Noah", "Mia", "Liam", "O'Brien", "伟", "娜", "芳", "静", "强", "さくら", "Søren"]
)
LAST_NAMES = np.array(
    ["Smith", "Müller", "García", "Dubois", "O'Neil", "Nguyen", "王", "李", "张", "刘",
     "陈", "佐藤", "Silva", "Kowalski", "Jones", "Schröder"]
)
CAMPAIGN_EVERY_DAYS = 28
CAMPAIGN_WINDOW_DAYS = 30
CAMPAIGN_COST = {"email": 0.05, "sms": 0.12, "coupon": 2.5}


@dataclass(frozen=True)
class GeneratorSettings:
    users: int = 5_000
    days: int = 180
    seed: int = 42
    end_date: str = "2026-11-21"  # last day of data; runs use it as the as-of date
    chunk_users: int = 20_000
    # true effect of a win-back contact: absolute increase in the 30-day return probability
    campaign_true_uplift: float = 0.12
    campaign_control_return: float = 0.06
    defect_rate: float = 0.002  # malformed rows
    duplicate_rate: float = 0.005  # redelivered events
    late_rate: float = 0.01  # events landing in a later partition than they occurred
    # mean events on a day a person is active (the benchmark's sizes raise it to reach their
    # event counts without changing how many people there are)
    events_per_active_day: float = 5.0


@dataclass
class GeneratorReport:
    settings: dict
    rows: dict[str, int] = field(default_factory=dict)
    files: int = 0
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.rows.get("events", 0) / self.seconds if self.seconds else 0.0


def generate(
    out_dir: Path,
    settings: GeneratorSettings,
    progress: Callable[[int, int], None] | None = None,
) -> GeneratorReport:
    """Write raw/ and truth/ under out_dir; returns row counts and timing."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    raw, truth = out_dir / "raw", out_dir / "truth"
    for d in (raw, truth):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    end = np.datetime64(settings.end_date, "D")
    start = end - np.int64(settings.days - 1)
    writer = _Writer(raw, start)
    report = GeneratorReport(settings=asdict(settings))
    n_chunks = max(1, -(-settings.users // settings.chunk_users))
    campaign_stats: dict[str, dict[str, int]] = {}


    written = [0]
    lock = threading.Lock()

    def write_chunk(chunk: int, tables: dict, truth_tables: dict) -> None:
        for name, (df, layout) in tables.items():
            writer.write(name, df, layout, chunk)
        for name, df in truth_tables.items():
            writer.write_truth(truth / f"{name}-c{chunk:04d}.parquet", df)
        with lock:
            written[0] += 1
            if progress:
                progress(written[0], n_chunks)

    # DuckDB writes earlier chunks (two at a time, releasing the GIL) while numpy simulates
    # the next; at most three chunks are alive, so memory stays bounded
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending: list = []
        for chunk in range(n_chunks):
            lo = chunk * settings.chunk_users
            hi = min(settings.users, lo + settings.chunk_users)
            rng = np.random.default_rng([settings.seed, chunk])
            tables, truth_tables = _simulate_chunk(rng, lo, hi, start, settings)
            for name, (df, _) in tables.items():
                report.rows[name] = report.rows.get(name, 0) + len(df)
            _accumulate_campaign_stats(campaign_stats, truth_tables["campaign_outcomes"])
            if len(pending) == 2:
                pending.pop(0).result()
            pending.append(pool.submit(write_chunk, chunk, tables, truth_tables))
        for future in pending:
            future.result()
    _shared_phone_orders(writer, settings, start, report)
    report.files = sum(1 for f in raw.rglob("*") if f.is_file())
    report.seconds = time.perf_counter() - started
    (truth / "campaigns.json").write_text(
        json.dumps(
            {
                "true_uplift": settings.campaign_true_uplift,
                "control_return_rate": settings.campaign_control_return,
                "window_days": CAMPAIGN_WINDOW_DAYS,
                "campaigns": campaign_stats,
            },
            indent=2,
        )
    )
    (truth / "generation.json").write_text(
        json.dumps({**asdict(report), "events_per_second": report.events_per_second}, indent=2)
    )
    writer.close()
    return report


# --------------------------------------------------------------------------------------
# simulation
# --------------------------------------------------------------------------------------


def _simulate_chunk(rng, lo: int, hi: int, start, s: GeneratorSettings):
    n = hi - lo
    pid = np.arange(lo, hi)
    days = s.days
    # --- who they are
    kind = rng.choice(3, size=n, p=[0.82, 0.12, 0.06])  # 0 account, 1 prospect, 2 store-only
    place = rng.choice(len(PLACES), size=n, p=[p[-1] for p in PLACES])
    engagement = rng.lognormal(0.0, 0.6, n)
    price_sens = rng.random(n) < 0.3
    bad_exp = rng.random(n) < 0.15
    first_seen = rng.integers(0, days, n)
    signup_delay = np.where(rng.random(n) < 0.6, 0, rng.integers(0, 5, n))
    signup_day = np.where(kind == 0, np.minimum(first_seen + signup_delay, days - 1), -1)
    active_from = np.where(kind == 0, signup_day, first_seen)
    # --- latent churn: hazard per day grows with price sensitivity and bad experiences,
    # falls with engagement
    hazard = 0.012 * np.exp(-0.8 * np.log(engagement) + 0.5 * price_sens + 0.9 * bad_exp)
    life1 = rng.exponential(1 / hazard).astype(np.int64) + 3
    churn1 = active_from + life1  # first inactive day of the first spell
    # --- win-back campaigns: the first campaign at least 14 days after churn, within 90
    camp_days = np.arange(CAMPAIGN_EVERY_DAYS, days, CAMPAIGN_EVERY_DAYS)
    camp_idx = np.searchsorted(camp_days, churn1 + 14)
    has_camp = (kind == 0) & (camp_idx < len(camp_days)) & (churn1 < days)
    camp_day = np.where(has_camp, camp_days[np.minimum(camp_idx, len(camp_days) - 1)], -1)
    has_camp &= camp_day - churn1 <= 90
    treated = has_camp & (rng.random(n) < 0.8)
    p_return = np.where(
        treated, s.campaign_control_return + s.campaign_true_uplift, s.campaign_control_return
    )
    camp_return = has_camp & (rng.random(n) < p_return)
    natural_return = (~has_camp) & (kind == 0) & (rng.random(n) < 0.04)
    react_day = np.where(
        camp_return,
        camp_day + rng.integers(1, CAMPAIGN_WINDOW_DAYS + 1, n),
        np.where(natural_return, churn1 + rng.integers(40, 200, n), -1),
    )
    react_day = np.where((react_day >= 0) & (react_day < days) & (churn1 < days), react_day, -1)
    life2 = rng.exponential(1 / hazard).astype(np.int64) + 3
    churn2 = np.where(react_day >= 0, react_day + life2, -1)
    cancel_reason = np.where(
        price_sens,
        "price",
        np.where(bad_exp, "service", CANCEL_REASONS[rng.choice([1, 2, 4, 5], n)]),
    )
    subscriber = (kind == 0) & (rng.random(n) < 0.35)

    # --- identifiers
    n_dev = np.where(kind == 2, 0, rng.choice([1, 2, 3], size=n, p=[0.5, 0.35, 0.15]))
    cc = np.array([PLACES[i][3] for i in place])
    national = (rng.integers(200_000_000, 999_999_999, n)).astype(str)
    phone_e164 = np.char.add(np.char.add("+", cc), national)
    has_phone = (kind == 2) | (rng.random(n) < 0.7)
    user_id = np.char.add("U", pid.astype(str))
    email = np.char.add(np.char.add("user", pid.astype(str)), "@example.com")

    start_dow = int((start.astype("datetime64[D]").astype(np.int64) + 3) % 7)  # 1970-01-01: Thu
    activity = _active_days(rng, active_from, churn1, react_day, churn2, engagement, days,
                            start_dow)
    ev = _events(rng, activity, kind, signup_day, n_dev, bad_exp, subscriber,
                 s.events_per_active_day)
    device_owner = np.repeat(pid, n_dev)
    device_slot = np.concatenate([np.arange(k) for k in n_dev]) if n else np.array([], int)
    device_ids = np.char.add("a", (device_owner * 10 + device_slot).astype(str))

    tables = {}
    tables["events"] = (_events_table(rng, ev, lo, place, cancel_reason, bad_exp, start, s),
                        "events")
    tables["orders"] = _orders_table(rng, tables["events"][0], pid, lo, user_id, email,
                                     phone_e164, has_phone, kind, place, start, s)
    tables["customers"] = _customers_table(rng, pid, kind, signup_day, user_id, email,
                                           phone_e164, has_phone, place, start, s)
    tables["campaign_touches"] = _touches_table(rng, pid, has_camp, treated, camp_day,
                                                user_id, start)
    tables["privacy_requests"] = _privacy_table(rng, pid, kind, user_id, email, start, days)

    truth_people = pd.DataFrame({
        "person_id": pid,
        "kind": np.array(["account", "prospect", "store_only"])[kind],
        "first_seen_date": start + first_seen,
        "signup_date": np.where(signup_day >= 0, start + signup_day, np.datetime64("NaT")),
        "churn_date": np.where(churn1 < days, start + churn1, np.datetime64("NaT")),
        "reactivation_date": np.where(react_day >= 0, start + react_day, np.datetime64("NaT")),
        "second_churn_date": np.where((churn2 >= 0) & (churn2 < days), start + churn2,
                                      np.datetime64("NaT")),
        "engagement": engagement,
        "price_sensitive": price_sens,
        "bad_experience": bad_exp,
        "subscriber": subscriber,
        "cancel_reason": np.where(churn1 < days, cancel_reason, None),
        "country": [PLACES[i][0] for i in place],
    })
    ids = [("user_id", user_id[kind == 0], pid[kind == 0]),
           ("email", email[kind == 0], pid[kind == 0]),
           ("phone", phone_e164[has_phone], pid[has_phone])]
    ids.append(("anonymous_id", device_ids, device_owner))
    truth_ids = pd.concat(
        [pd.DataFrame({"identifier_type": t, "identifier": v, "person_id": p}) for t, v, p in ids],
        ignore_index=True,
    )
    outcomes = pd.DataFrame({
        "person_id": pid[has_camp],
        "campaign_id": [f"winback-{start + d}" for d in camp_day[has_camp]],
        "group": np.where(treated[has_camp], "treatment", "control"),
        "returned": camp_return[has_camp],
    })
    truth_tables = {"people": truth_people, "identities": truth_ids, "campaign_outcomes": outcomes}
    return tables, truth_tables


def _active_days(rng, active_from, churn1, react_day, churn2, engagement, days, start_dow):
    """Person-day pairs of activity: binomial draws inside each active spell, thinned by a
    weekly rhythm (weekends busier)."""
    p_day = np.clip(0.2 * engagement, 0.02, 0.8)
    spells = [(active_from, np.minimum(churn1, days))]
    spells.append((np.where(react_day >= 0, react_day, 0),
                   np.where(react_day >= 0, np.minimum(churn2, days), 0)))
    people, day = [], []
    for s0, s1 in spells:
        length = np.maximum(s1 - s0, 0)
        k = rng.binomial(length, p_day) + (length > 0)  # at least the first day of a spell
        who = np.repeat(np.arange(len(s0)), k)
        offset = (rng.random(len(who)) * length[who]).astype(np.int64)
        offset[np.r_[0, np.cumsum(k)[:-1]][k > 0]] = 0  # the spell starts with activity
        d = s0[who] + offset
        people.append(who)
        day.append(d)
    who, d = np.concatenate(people), np.concatenate(day)
    dow_weight = np.array([0.75, 0.7, 0.7, 0.75, 0.85, 1.0, 1.0])  # Mon..Sun
    keep = rng.random(len(d)) < dow_weight[(d + start_dow) % 7]
    return {"person": who[keep], "day": d[keep]}


EVENT_TYPES = KNOWN_EVENT_TYPES  # the contract's vocabulary; codes index into it
T = {name: code for code, name in enumerate(EVENT_TYPES)}
ENGAGED_CODES = np.array([T["page_view"], T["feature_use"], T["add_to_cart"], T["page_view"],
                          T["feature_use"]], dtype=np.int8)
CHANNELS = ["app_ios", "web", "app_android", "mini_program"]


def _events(rng, act, kind, signup_day, n_dev, bad_exp, subscriber, per_active_day=5.0):
    """Event skeletons as numeric arrays (who, day, second, type code, device slot)."""
    who, day = act["person"], act["day"]
    per_day = 1 + rng.poisson(max(per_active_day - 1.0, 0.0), len(who))
    e_who = np.repeat(who, per_day)
    e_day = np.repeat(day, per_day)
    first_in_day = np.zeros(len(e_who), dtype=bool)
    first_in_day[np.r_[0, np.cumsum(per_day)[:-1]][per_day > 0] if len(per_day) else []] = True
    sec = rng.integers(6 * 3600, 23 * 3600, len(e_who))
    etype = ENGAGED_CODES[rng.integers(0, len(ENGAGED_CODES), len(e_who))]
    etype[first_in_day] = T["session_start"]
    r = rng.random(len(e_who))
    etype[(r < 0.06) & ~first_in_day] = T["purchase"]
    etype[(r > 0.995) & ~first_in_day] = T["refund"]
    # bad experiences show as support tickets (and low NPS, see _events_table)
    ticket_rate = np.where(bad_exp[e_who], 0.04, 0.004)
    etype[(rng.random(len(e_who)) < ticket_rate) & ~first_in_day] = T["support_ticket"]
    etype[(rng.random(len(e_who)) < 0.01) & ~first_in_day] = T["survey_response"]
    dev_slot = (rng.random(len(e_who)) * np.maximum(n_dev[e_who], 1)).astype(np.int64)
    signed_up = (kind[e_who] == 0) & (e_day >= signup_day[e_who])
    keep = kind[e_who] != 2  # store-only people have no devices: orders only
    ev = {
        "who": e_who[keep], "day": e_day[keep], "sec": sec[keep], "type": etype[keep],
        "dev": dev_slot[keep], "signed_up": signed_up[keep],
    }
    # every account gets a signup event on its signup day, on its first device
    acc = np.flatnonzero((kind == 0) & (signup_day >= 0))
    extra = {
        "who": acc, "day": signup_day[acc], "sec": np.full(len(acc), 6 * 3600 - 60),
        "type": np.full(len(acc), T["signup"], dtype=np.int8),
        "dev": np.zeros(len(acc), np.int64), "signed_up": np.ones(len(acc), bool),
    }
    ev = {k: np.concatenate([ev[k], extra[k]]) for k in ev}
    # a login on the first signed-up use of each (person, device): what links a device
    su = np.flatnonzero(ev["signed_up"])
    when = pd.Series(ev["day"][su] * DAY_S + ev["sec"][su])
    first = su[when.groupby(ev["who"][su] * 4 + ev["dev"][su]).idxmin().to_numpy()]
    login = {k: ev[k][first].copy() for k in ev}
    login["type"] = np.full(len(first), T["login"], dtype=np.int8)
    login["sec"] = login["sec"] + 1
    ev = {k: np.concatenate([ev[k], login[k]]) for k in ev}
    return _subscription_events(ev, subscriber, signup_day)


def _subscription_events(ev, subscriber, signup_day):
    """Subscribers start on signup day, renew every 30 days while active, cancel at the end."""
    sub_mask = subscriber[ev["who"]] & ev["signed_up"]
    who, day = ev["who"][sub_mask], ev["day"][sub_mask]
    if len(who) == 0:
        return ev
    last = pd.Series(day).groupby(who).max()
    people = last.index.to_numpy()
    s0 = signup_day[people]
    last_day = last.to_numpy()
    n_renew = np.maximum((last_day - s0) // 30, 0)
    r_who = np.repeat(people, n_renew)
    nth = np.arange(n_renew.sum()) - np.repeat(np.r_[0, np.cumsum(n_renew)[:-1]], n_renew) + 1
    r_day = np.repeat(s0, n_renew) + 30 * nth
    new = {
        "who": np.concatenate([people, r_who, people]),
        "day": np.concatenate([s0, r_day, last_day]),
        "type": np.concatenate([
            np.full(len(people), T["subscription_start"], dtype=np.int8),
            np.full(len(r_who), T["subscription_renew"], dtype=np.int8),
            np.full(len(people), T["subscription_cancel"], dtype=np.int8),
        ]),
    }
    m = len(new["who"])
    new["sec"] = np.full(m, 22 * 3600)
    new["dev"] = np.zeros(m, np.int64)
    new["signed_up"] = np.ones(m, bool)
    return {k: np.concatenate([ev[k], new[k]]) for k in ev}


def _ts_style(rng, n, utc_offset_h):
    """0: UTC with Z, 1: local time with the person's offset, 2: naive (source time zone)."""
    style = np.zeros(n, dtype=np.int8)
    r = rng.random(n)
    style[(r < 0.25) & (utc_offset_h != 0)] = 1
    style[r > 0.93] = 2
    return style


def _ts_strings(rng, day, sec, start, utc_offset_h):
    """ISO-8601 strings for small tables (orders, customers); events format theirs in SQL."""
    ts = (start + day).astype("datetime64[s]") + sec.astype("timedelta64[s]")
    style = _ts_style(rng, len(ts), utc_offset_h)
    local = ts + (utc_offset_h * 3600).astype("timedelta64[s]")
    out = np.where(style == 1, local, ts).astype(str).astype(object)
    sign = np.where(utc_offset_h >= 0, "+", "-")
    hours = np.char.zfill(np.abs(utc_offset_h).astype(str), 2)
    suffix = np.char.add(np.char.add(sign, hours), ":00").astype(object)
    return np.where(style == 1, out + suffix, np.where(style == 2, out, out + "Z"))


def _events_table(rng, ev, lo, place, cancel_reason, bad_exp, start, s):
    """Numeric event frame; _Writer.write_events turns it into strings inside DuckDB."""
    who = ev["who"]
    n = len(who)
    t = ev["type"]
    country = np.array([PLACES[i][0] for i in place])
    offset_h = np.array([PLACES[i][4] for i in place], dtype=np.int8)[who]
    channel = ev["dev"].astype(np.int8)
    channel[(country[who] == "CN") & (ev["dev"] == 1)] = 3  # mini-program
    # web, login, signup and subscription events carry the account id; app events carry only
    # the device id, which a login links to the account; a few web events carry only an email
    # (clicks from newsletters), linked through the CRM
    is_sub = (t >= T["subscription_start"]) & (t <= T["subscription_cancel"])
    has_uid = ev["signed_up"] & ((channel == 1) | (t == T["login"]) | (t == T["signup"]) | is_sub)
    email_only = ev["signed_up"] & (channel == 1) & (rng.random(n) < 0.02) & ~is_sub & (
        t != T["login"]) & (t != T["signup"])
    has_uid &= ~email_only
    amount = np.full(n, np.nan)
    buy = t == T["purchase"]
    amount[buy] = np.round(rng.gamma(2.0, 20.0, buy.sum()) + 5, 2)
    amount[(t == T["subscription_start"]) | (t == T["subscription_renew"])] = 9.99
    ref = t == T["refund"]
    amount[ref] = np.round(rng.gamma(2.0, 15.0, ref.sum()), 2)
    nps = np.where(bad_exp[who], rng.integers(0, 7, n), rng.integers(6, 11, n)).astype(np.int8)
    # cancel reasons as codes per person, then per event (no string work per event)
    reason_code = np.searchsorted(np.sort(CANCEL_REASONS), cancel_reason).astype(np.int8)[who]
    day = ev["day"].astype(np.int64)
    cols = {
        "pid": (who + lo).astype(np.int64),
        "seq": np.arange(n, dtype=np.int64),
        "code": t.astype(np.int8),
        "channel": channel,
        "dev": ev["dev"].astype(np.int8),
        "epoch": (start + day).astype("datetime64[s]").astype(np.int64) + ev["sec"],
        "tzh": offset_h,
        "style": _ts_style(rng, n, offset_h),
        "has_uid": has_uid,
        "has_anon": ~email_only,
        "has_email": email_only,
        "amount": amount,
        "nps": nps,
        "reason": reason_code,
        "feature": rng.integers(0, 3, n).astype(np.int8),
        "bad": np.zeros(n, np.int8),
        "_day": day,
    }
    return _inject_event_defects(rng, cols, s)


def _inject_event_defects(rng, cols: dict, s) -> pa.Table:
    """Malformed rows (bad codes 1-4), redeliveries (same event_id again, maybe a later
    partition) and late arrivals (landing in a later partition than they occurred). The
    original events are the first rows; redeliveries are appended after them."""
    n = len(cols["pid"])
    bad = rng.random(n) < s.defect_rate
    cols["bad"][bad] = rng.integers(1, 5, bad.sum()).astype(np.int8)
    dup = np.flatnonzero(rng.random(n) < s.duplicate_rate)
    late = rng.random(n) < s.late_rate
    cols["_day"][late] += rng.integers(1, 6, late.sum())
    dup_day = cols["_day"][dup] + rng.integers(0, 3, len(dup))
    take = np.concatenate([np.arange(n), dup])
    out = {k: v[take] for k, v in cols.items()}
    out["_day"][n:] = dup_day
    # no amount is null, not NaN (pandas used to hide the difference; Arrow does not)
    amount = out.pop("amount")
    return pa.table({**out, "amount": pa.array(amount, mask=np.isnan(amount))})


def _orders_table(rng, ev_df, pid, lo, user_id, email, phone, has_phone, kind, place, start, s):
    """Shop orders mirror purchase events (same order id and amount); store (POS) orders are
    known only by a phone typed at the till."""
    n = len(pid)
    code = ev_df.column("code").to_numpy()
    seq = ev_df.column("seq").to_numpy()
    # the originals are the first rows (seq 0..n-1); redeliveries follow and are the same
    # orders, not new ones
    originals = int(seq.max()) + 1 if len(seq) else 0
    buy = np.flatnonzero(code[:originals] == T["purchase"])
    pids = ev_df.column("pid").to_numpy()[buy]
    who = pids - lo
    epoch = ev_df.column("epoch").to_numpy()[buy]
    online = pd.DataFrame({
        "order_id": np.char.add("o", (pids * 100_000_000 + seq[buy]).astype(str)).astype(
            object),
        "_who": who, "_day": (epoch - _epoch(start)) // DAY_S, "_sec": epoch % DAY_S,
        "channel": "web", "store_id": None,
        "amount": ev_df.column("amount").to_numpy()[buy],
    })
    store_rate = np.where(kind == 2, 6.0, np.where(has_phone & (kind == 0), 0.5, 0.0))
    k = rng.poisson(store_rate)
    s_who = np.repeat(np.arange(n), k)
    s_day = (rng.random(len(s_who)) * s.days).astype(np.int64)
    store = pd.DataFrame({
        "order_id": np.char.add("os", np.char.add((s_who + lo).astype(str), np.char.add(
            "-", np.arange(len(s_who)).astype(str)))).astype(object),
        "_who": s_who, "_day": s_day, "_sec": rng.integers(9 * 3600, 21 * 3600, len(s_who)),
        "channel": "store", "store_id": np.char.add("S", rng.integers(1, 40, len(s_who))
                                                    .astype(str)).astype(object),
        "amount": np.round(rng.gamma(2.0, 20.0, len(s_who)) + 5, 2),
    })
    df = pd.concat([online, store], ignore_index=True)
    m = len(df)
    w = df["_who"].to_numpy()
    offset_h = np.array([PLACES[i][4] for i in place])[w]
    df["ordered_at"] = _ts_strings(rng, df["_day"].to_numpy(), df["_sec"].to_numpy(), start,
                                   offset_h)
    df["currency"] = "USD"
    df["status"] = np.where(rng.random(m) < 0.04, "refunded", "completed")
    df["updated_at"] = df["ordered_at"]
    is_store = df["channel"].to_numpy() == "store"
    df["user_id"] = np.where(is_store, None, user_id[w]).astype(object)
    df["email"] = np.where(is_store | (rng.random(m) < 0.7), None, email[w]).astype(object)
    df["phone"] = np.where(is_store, _messy_phone(rng, phone[w]), None).astype(object)
    # a later version of some orders: refunded after the fact (latest updated_at wins)
    later = df[(rng.random(m) < 0.01) & ~is_store].copy()
    later["status"] = "refunded"
    later["updated_at"] = ((start + later["_day"].to_numpy() + 2).astype("datetime64[s]")
                           .astype(str) + "Z")
    df = pd.concat([df, later], ignore_index=True)
    # malformed rows: negative or non-numeric amounts, missing identifiers
    df["amount"] = df["amount"].astype(object)
    bad = rng.random(len(df)) < s.defect_rate * 2
    kind_b = rng.integers(0, 3, len(df))
    df.loc[bad & (kind_b == 0), "amount"] = -5.0
    df.loc[bad & (kind_b == 1), "amount"] = "twelve"
    df.loc[bad & (kind_b == 2), ["user_id", "email", "phone"]] = None
    df["amount"] = df["amount"].astype(str)
    return df.drop(columns=["_who", "_sec"]), "orders"


def _epoch(day) -> int:
    return int(np.datetime64(day, "s").astype(np.int64))


def _messy_phone(rng, e164):
    """Phones as people type them: +86138..., 0086138..., + 86138..."""
    style = rng.integers(0, 3, len(e164))
    digits = np.char.lstrip(e164.astype(str), "+")
    return np.where(style == 0, e164, np.where(style == 1, np.char.add("00", digits),
                                               np.char.add("+ ", digits)))


def _customers_table(rng, pid, kind, signup_day, user_id, email, phone, has_phone, place, start,
                     s):
    acc = np.flatnonzero(kind == 0)
    n = len(acc)
    fn = FIRST_NAMES[rng.integers(0, len(FIRST_NAMES), n)]
    ln = LAST_NAMES[rng.integers(0, len(LAST_NAMES), n)]
    cn = np.array([PLACES[i][0] for i in place[acc]]) == "CN"
    name = np.where(cn, np.char.add(ln, fn), np.char.add(np.char.add(fn, " "), ln))
    signup_ts = (start + signup_day[acc]).astype("datetime64[s]") + np.timedelta64(6 * 3600 - 60,
                                                                                  "s")
    messy_email = np.where(rng.random(n) < 0.1, np.char.add("  ", np.char.upper(email[acc])),
                           email[acc])
    base = pd.DataFrame({
        "user_id": user_id[acc].astype(object),
        "updated_at": signup_ts.astype(str),
        "email": messy_email.astype(object),
        "phone": np.where(has_phone[acc], _messy_phone(rng, phone[acc]), None),
        "name": name.astype(object),
        "gender": rng.choice(np.array(["female", "male", "other", None], dtype=object), n,
                             p=[0.48, 0.46, 0.02, 0.04]),
        "birth_date": np.where(rng.random(n) < 0.8,
                               (np.datetime64("1960-01-01") + rng.integers(0, 16000, n)).astype(
                                   str), None),
        "country": np.array([PLACES[i][0] for i in place[acc]], dtype=object),
        "region": np.array([PLACES[i][1] for i in place[acc]], dtype=object),
        "city": np.array([PLACES[i][2] for i in place[acc]], dtype=object),
        "signup_at": signup_ts.astype(str),
        "acquisition_channel": rng.choice(ACQ_CHANNELS, n, p=ACQ_WEIGHTS).astype(object),
        "marketing_consent": np.where(rng.random(n) < 0.7, "true", "false"),
    })
    base["_day"] = signup_day[acc]
    # profile updates: a later version with a changed city or consent
    upd = base[rng.random(n) < 0.25].copy()
    delta = rng.integers(1, 60, len(upd))
    # an update due after the last day has not happened yet (clipping it to the last day piled
    # a week's worth of updates onto one day, which the volume check rightly flagged)
    upd["_day"] = upd["_day"] + delta
    upd = upd[upd["_day"] < s.days]
    upd["updated_at"] = (start + upd["_day"].to_numpy()).astype("datetime64[s]").astype(str)
    upd["marketing_consent"] = np.where(rng.random(len(upd)) < 0.5, "false", "true")
    return pd.concat([base, upd], ignore_index=True), "customers"


def _touches_table(rng, pid, has_camp, treated, camp_day, user_id, start):
    idx = np.flatnonzero(has_camp)
    channel = rng.choice(np.array(["email", "sms", "coupon"]), len(idx), p=[0.6, 0.25, 0.15])
    df = pd.DataFrame({
        "touch_id": np.char.add("t", pid[idx].astype(str)).astype(object),
        "campaign_id": np.array([f"winback-{start + d}" for d in camp_day[idx]], dtype=object),
        "campaign_type": "winback",
        "sent_at": ((start + camp_day[idx]).astype("datetime64[s]") +
                    np.timedelta64(10 * 3600, "s")).astype(str),
        "channel": channel.astype(object),
        "offer": np.where(channel == "coupon", "20%_off", "come_back_message"),
        "cost": np.array([CAMPAIGN_COST[c] for c in channel]),
        "group": np.where(treated[idx], "treatment", "control"),
        "user_id": user_id[idx].astype(object),
    })
    df.loc[df["group"] == "control", "cost"] = 0.0
    df["_day"] = camp_day[idx]
    return df, "campaign_touches"


def _privacy_table(rng, pid, kind, user_id, email, start, days):
    acc = np.flatnonzero((kind == 0) & (rng.random(len(pid)) < 0.004))
    rtype = np.where(rng.random(len(acc)) < 0.3, "delete", "withdraw_consent")
    day = rng.integers(0, days, len(acc))
    df = pd.DataFrame({
        "request_id": np.char.add("r", pid[acc].astype(str)).astype(object),
        "request_type": rtype.astype(object),
        "requested_at": ((start + day).astype("datetime64[s]")).astype(str),
        "user_id": user_id[acc].astype(object),
        "email": None,
    })
    df["_day"] = day
    return df, "privacy_requests"


def _shared_phone_orders(writer, s, start, report):
    """A store till that types its own phone for walk-in customers: one phone, many people."""
    rng = np.random.default_rng([s.seed, 999_999])
    m = max(20, s.users // 100)
    day = rng.integers(0, s.days, m)
    df = pd.DataFrame({
        "order_id": [f"ow-{i}" for i in range(m)],
        "ordered_at": ((start + day).astype("datetime64[s]") + np.timedelta64(12 * 3600, "s"))
        .astype(str),
        "amount": np.round(rng.gamma(2.0, 10.0, m), 2).astype(str),
        "currency": "USD", "status": "completed", "channel": "store", "store_id": "S0",
        "phone": "+1 000 000 0000", "_day": day,
    })
    df["updated_at"] = df["ordered_at"]
    writer.write("orders", df, "orders", 99_999)
    report.rows["orders"] = report.rows.get("orders", 0) + m


def _accumulate_campaign_stats(acc, outcomes: pd.DataFrame):
    if outcomes.empty:
        return
    g = outcomes.groupby(["campaign_id", "group"])["returned"].agg(["size", "sum"])
    for (cid, grp), row in g.iterrows():
        c = acc.setdefault(cid, {})
        c[f"{grp}_users"] = c.get(f"{grp}_users", 0) + int(row["size"])
        c[f"{grp}_returned"] = c.get(f"{grp}_returned", 0) + int(row["sum"])


# --------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------


_TS_SQL = """CASE {style}
    WHEN 1 THEN replace(make_timestamp(({epoch} + {tzh} * 3600) * 1000000)::VARCHAR, ' ', 'T')
                || printf('%+03d:00', {tzh})
    WHEN 2 THEN make_timestamp({epoch} * 1000000)::VARCHAR
    ELSE replace(make_timestamp({epoch} * 1000000)::VARCHAR, ' ', 'T') || 'Z' END"""


def _events_sql(reasons: list[str]) -> str:
    """SELECT that turns the numeric event frame `_ev` into contract columns. Bad codes:
    1 unparseable or missing time, 2 no event type, 3 no identifier, 4 no event id.
    `{occurred_at}` and `{where}` are filled by the caller, per output format."""
    types = "[" + ", ".join(f"'{t}'" for t in EVENT_TYPES) + "]"
    chans = "[" + ", ".join(f"'{c}'" for c in CHANNELS) + "]"
    rs = "[" + ", ".join(f"'{r}'" for r in reasons) + "]"
    return f"""
    SELECT
        CASE WHEN bad = 4 THEN NULL ELSE 'e' || (pid * 100000000 + seq) END AS event_id,
        CASE WHEN bad = 2 THEN NULL ELSE {types}[code + 1] END AS event_type,
        {{occurred_at}} AS occurred_at,
        {chans}[channel + 1] AS channel,
        CASE WHEN has_uid AND bad <> 3 THEN 'U' || pid END AS user_id,
        CASE WHEN has_anon AND bad <> 3 THEN 'a' || (pid * 10 + dev) END AS anonymous_id,
        CASE WHEN has_email AND bad <> 3 THEN 'user' || pid || '@example.com' END AS email,
        amount,
        CASE WHEN amount IS NOT NULL THEN 'USD' END AS currency,
        CASE WHEN code = {T["purchase"]} THEN 'o' || (pid * 100000000 + seq) END AS order_id,
        CASE code
            WHEN {T["subscription_cancel"]} THEN
                '{{"cancel_reason": "' || {rs}[reason + 1] || '", "plan": "monthly"}}'
            WHEN {T["survey_response"]} THEN
                '{{"nps": ' || nps || ', "satisfaction": ' || least(5, 1 + nps // 2) || '}}'
            WHEN {T["feature_use"]} THEN
                '{{"feature": "' || (['search', 'wishlist', 'compare'])[feature + 1] || '"}}'
        END AS properties
    FROM _ev
    WHERE {{where}}"""


class _Writer:
    """Writes raw files through DuckDB: fast CSV / Parquet / JSONL.gz, one folder per month
    (month=YYYY-MM, by landing date), one file per chunk of people."""

    def __init__(self, raw: Path, start):
        self.raw = raw
        self.start = start
        self._root = duckdb.connect()
        self._root.execute("SET preserve_insertion_order = false")
        self._root.execute("SET TimeZone = 'UTC'")
        self._local = threading.local()

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """One cursor per writer thread: chunks are written concurrently."""
        if not hasattr(self._local, "con"):
            self._local.con = self._root.cursor()
            self._local.con.execute("SET TimeZone = 'UTC'")
        return self._local.con

    _FORMATS = {
        "parquet": ("FORMAT parquet, COMPRESSION lz4_raw, ROW_GROUP_SIZE 1000000", "parquet"),
        "csv": ("FORMAT csv, HEADER true", "csv"),
        "csv.gz": ("FORMAT csv, HEADER true, COMPRESSION gzip", "csv.gz"),
        "jsonl": ("FORMAT json", "jsonl"),
        "jsonl.gz": ("FORMAT json, COMPRESSION gzip", "jsonl.gz"),
    }

    def _copy_partitioned(self, select_sql: str, folder: Path, fmt: str, name: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        opts, ext = self._FORMATS[fmt]
        self.con.execute(
            f"COPY ({select_sql}) TO '{folder}' ({opts}, PARTITION_BY (month), "
            f"FILENAME_PATTERN '{name}-{{i}}', FILE_EXTENSION '{ext}', OVERWRITE_OR_IGNORE true)"
        )

    def write_events(self, table: pa.Table, chunk: int) -> None:
        """App and web SDK events as Parquet with typed UTC timestamps (a broken clock writes
        null); mini-program events as JSON Lines with ISO strings (Z, local offsets or naive;
        a broken clock writes 'not-a-date'). One file per format per month per chunk."""
        if table.num_rows == 0:
            return
        day = table.column("_day").to_numpy()
        months = (self.start + np.arange(day.max() + 1)).astype("datetime64[M]")
        month_of_row = months[day]
        order = np.argsort(month_of_row, kind="stable")
        table = table.take(pa.array(order))
        sorted_months = month_of_row[order]
        bounds = np.flatnonzero(np.r_[True, sorted_months[1:] != sorted_months[:-1], True])
        sql = _events_sql(sorted(CANCEL_REASONS.tolist()))
        typed = "CASE WHEN bad = 1 THEN NULL ELSE to_timestamp(epoch) END"
        iso = "CASE WHEN bad = 1 THEN 'not-a-date' ELSE " + _TS_SQL.format(
            style="style", epoch="epoch", tzh="tzh") + " END"
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            folder = self.raw / "events" / f"month={sorted_months[lo]}"
            folder.mkdir(parents=True, exist_ok=True)
            self.con.register("_ev", table.slice(lo, hi - lo))
            opts, _ = self._FORMATS["parquet"]
            self.con.execute(
                f"COPY ({sql.replace('{where}', 'channel <> 3').replace('{occurred_at}', typed)})"
                f" TO '{folder / f'app-web-c{chunk:04d}.parquet'}' ({opts})")
            self.con.execute(
                f"COPY ({sql.replace('{where}', 'channel = 3').replace('{occurred_at}', iso)})"
                f" TO '{folder / f'mini-c{chunk:04d}.jsonl'}' (FORMAT json)")
            self.con.unregister("_ev")

    def write(self, source: str, df, layout: str, chunk: int) -> None:
        if layout == "events":
            self.write_events(df, chunk)
            return
        if df.empty:
            return
        df = df.assign(month=(self.start + df["_day"].to_numpy()).astype("datetime64[M]")
                       .astype(str))
        self.con.register("_df", df)
        cols = ", ".join(f'"{c}"' for c in df.columns if not c.startswith("_"))
        folder = self.raw / source
        if layout == "orders":
            self._copy_partitioned(f"SELECT {cols} FROM _df WHERE channel <> 'store'", folder,
                                   "parquet", f"shop-c{chunk:04d}")
            self._copy_partitioned(f"SELECT {cols} FROM _df WHERE channel = 'store'", folder,
                                   "csv", f"pos-c{chunk:04d}")
        elif layout == "customers":
            self._copy_partitioned(f"SELECT {cols} FROM _df", folder, "csv", f"crm-c{chunk:04d}")
        elif layout == "campaign_touches":
            self._copy_partitioned(f"SELECT {cols} FROM _df", folder, "jsonl.gz",
                                   f"touches-c{chunk:04d}")
        else:
            self._copy_partitioned(f"SELECT {cols} FROM _df", folder, "csv.gz",
                                   f"requests-c{chunk:04d}")
        self.con.unregister("_df")

    def write_truth(self, path: Path, df: pd.DataFrame) -> None:
        self.con.register("_df", df)
        self.con.execute(f"COPY (SELECT * FROM _df) TO '{path}' (FORMAT parquet)")
        self.con.unregister("_df")

    def close(self) -> None:
        self._root.close()
