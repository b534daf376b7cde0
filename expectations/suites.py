"""The Great Expectations suites, as code, versioned with the models they guard.

A suite validates one table (or a small SQL frame derived from it, for rules that compare
tables: sums that must agree, counts that must match). Every expectation has a severity:
`block` (wrong data would mislead: the run stops before anything downstream and before the
publish) or `warn` (shown in the UI and in `data_quality_results`, the run goes on).

Suites are built by functions of the run's parameters (`SuiteParams`), so bounds such as the
latest acceptable timestamp come from the run, not from the wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

BLOCK, WARN = "block", "warn"
IDENTIFIERS = ("user_id", "anonymous_id", "email_hash", "phone_hash")
LIFECYCLE_STAGES = ["prospect", "new", "activated", "active", "dormant", "churned",
                    "reactivated"]
RISK_TIERS = ["high", "medium", "low"]
VALUE_TIERS = ["high", "medium", "low", "no_purchase", "unknown"]
ORDER_STATUSES = ["completed", "refunded", "cancelled"]
EVENT_CHANNELS = ["web", "app_ios", "app_android", "mini_program", "store", "app", "pos"]
TOUCH_CHANNELS = ["email", "sms", "push", "phone", "coupon"]


@dataclass(frozen=True)
class Expectation:
    name: str               # check_name in data_quality_results
    gx_type: str            # class in great_expectations.expectations
    kwargs: dict[str, Any]
    severity: str = BLOCK


@dataclass(frozen=True)
class Suite:
    name: str
    table: str              # schema.table the suite is about (and read when sql is None)
    stage: str              # staging, identity, marts, churn, value
    expectations: list[Expectation]
    sql: str | None = None  # the frame to validate, when it is not the table itself
    scope: str = "every row"  # which rows sql selects, in words (shown with the result)

    @property
    def blocking(self) -> bool:
        return any(e.severity == BLOCK for e in self.expectations)


@dataclass(frozen=True)
class SuiteParams:
    latest_timestamp: datetime | None = None  # newest acceptable event time
    min_label_rate: float = 0.005
    max_label_rate: float = 0.8
    min_labelled_rows: int = 1000
    winback_budget: float = 0.0
    known_event_types: list[str] = field(default_factory=list)
    # source -> the `_staging_run` of its newest staging build, for sources whose staging
    # stamps the rows each build writes: their suite validates that build's rows (a daily
    # build's new and touched rows; a full build's every row), not the whole table
    staging_runs: dict[str, str] = field(default_factory=dict)


def _e(name, gx_type, severity=BLOCK, **kwargs) -> Expectation:
    return Expectation(name, gx_type, kwargs, severity)


def not_null(column, severity=BLOCK) -> Expectation:
    return _e(f"{column}_not_null", "ExpectColumnValuesToNotBeNull", severity, column=column)


def unique(column, severity=BLOCK) -> Expectation:
    return _e(f"{column}_unique", "ExpectColumnValuesToBeUnique", severity, column=column)


def in_set(column, values, severity=BLOCK) -> Expectation:
    return _e(f"{column}_in_set", "ExpectColumnValuesToBeInSet", severity, column=column,
              value_set=list(values))


def between(column, low=None, high=None, severity=BLOCK, name=None) -> Expectation:
    kwargs = {"column": column}
    if low is not None:
        kwargs["min_value"] = low
    if high is not None:
        kwargs["max_value"] = high
    return _e(name or f"{column}_in_range", "ExpectColumnValuesToBeBetween", severity, **kwargs)


def always_true(column, severity=BLOCK) -> Expectation:
    """For a boolean rule computed in the suite's SQL (one row per thing checked)."""
    return _e(column, "ExpectColumnValuesToBeInSet", severity, column=column, value_set=[True])


def exists(columns) -> list[Expectation]:
    return [_e(f"{c}_exists", "ExpectColumnToExist", BLOCK, column=c) for c in columns]


def timestamp(column, p: SuiteParams) -> list[Expectation]:
    rules = [not_null(column),
             _e(f"{column}_is_timestamp", "ExpectColumnValuesToBeInTypeList", BLOCK,
                column=column, type_list=["datetime64[us]", "datetime64[ns]", "datetime64[ms]",
                                          "datetime64[s]", "DatetimeTZDtype"])]
    if p.latest_timestamp is not None:
        rules.append(between(column, high=p.latest_timestamp.isoformat(sep=" "),
                             name=f"{column}_not_in_future"))
    return rules


def _staging_frame(source: str, p: SuiteParams,
                   identifiers: tuple[str, ...] = IDENTIFIERS) -> dict[str, str]:
    """The sql (and its scope) of a staging suite: every row, or the rows of the newest
    staging build where the source's builds stamp their rows; with `has_identifier` (any
    of the source's `identifiers` set) when it has some."""
    has_id = " or ".join(f"{c} is not null" for c in identifiers)
    extra = f", ({has_id}) as has_identifier" if identifiers else ""
    sql = f"select *{extra} from staging.stg_{source}"
    run = p.staging_runs.get(source)
    if run is None:
        return {"sql": sql}
    return {"sql": sql + " where _staging_run = '" + run.replace("'", "''") + "'",
            "scope": f"rows written by the newest staging build ({run})"}


def staging_suites(p: SuiteParams) -> list[Suite]:
    events = Suite("stg_events", "staging.stg_events", "staging", [
        *exists(["event_id", "event_type", "occurred_at", "channel", "properties"]),
        not_null("event_id"), unique("event_id"), not_null("event_type"),
        in_set("event_type", p.known_event_types, WARN) if p.known_event_types else
        not_null("event_type", WARN),
        *timestamp("occurred_at", p),
        in_set("channel", EVENT_CHANNELS, WARN),
        always_true("has_identifier"),
    ], **_staging_frame("events", p))
    orders = Suite("stg_orders", "staging.stg_orders", "staging", [
        *exists(["order_id", "ordered_at", "amount", "status", "currency"]),
        not_null("order_id"), unique("order_id"), *timestamp("ordered_at", p),
        not_null("amount"), between("amount", low=0), in_set("status", ORDER_STATUSES),
        _e("currency_iso_code", "ExpectColumnValueLengthsToEqual", WARN, column="currency",
           value=3),
        always_true("has_identifier"),
    ], **_staging_frame("orders", p))
    customers = Suite("stg_customers", "staging.stg_customers", "staging", [
        *exists(["user_id", "updated_at", "marketing_consent"]),
        not_null("user_id"), *timestamp("updated_at", p),
        _e("one_version_per_user_and_time", "ExpectCompoundColumnsToBeUnique", BLOCK,
           column_list=["user_id", "updated_at"]),
        in_set("marketing_consent", [True, False], WARN),
        between("birth_year", low=1900, high=(p.latest_timestamp.year if p.latest_timestamp
                                              else 2100), severity=WARN),
    ], **_staging_frame("customers", p, identifiers=()))  # a profile is its user_id
    touches = Suite("stg_campaign_touches", "staging.stg_campaign_touches", "staging", [
        *exists(["touch_id", "campaign_id", "sent_at", "touch_group", "cost"]),
        not_null("touch_id"), unique("touch_id"), not_null("campaign_id"),
        *timestamp("sent_at", p), in_set("touch_group", ["treatment", "control"]),
        between("cost", low=0), in_set("channel", TOUCH_CHANNELS, WARN),
        always_true("has_identifier"),
    ], **_staging_frame("campaign_touches", p))
    privacy = Suite("stg_privacy_requests", "staging.stg_privacy_requests", "staging", [
        *exists(["request_id", "request_type", "requested_at"]),
        not_null("request_id"), unique("request_id"),
        in_set("request_type", ["delete", "withdraw_consent"]), *timestamp("requested_at", p),
        always_true("has_identifier"),
    ], **_staging_frame("privacy_requests", p,
                        identifiers=tuple(c for c in IDENTIFIERS if c != "anonymous_id")))
    return [events, orders, customers, touches, privacy]


def identity_suites(p: SuiteParams) -> list[Suite]:
    return [Suite("int_identity_map", "intermediate.int_identity_map", "identity", [
        not_null("node_id"), _e("every_identifier_maps_to_one_person",
                                "ExpectColumnValuesToBeUnique", BLOCK, column="node_id"),
        not_null("user_key"),
        in_set("node_type", ["user_id", "anonymous_id", "email", "phone"]),
    ])]


KPI_REVENUE_SQL = """
    with orders as (
        select order_date as date, sum(amount) as completed
        from intermediate.int_orders where status = 'completed' group by order_date
    )
    select k.date, k.dau <= k.wau and k.wau <= k.mau as dau_wau_mau_ordered,
           abs(coalesce(k.revenue, 0) - coalesce(o.completed, 0)) < 0.005
               as revenue_equals_completed_orders,
           k.churn_rate
    from marts.kpi_daily as k left join orders as o using (date)
    union all
    -- a day with completed orders but no KPI row would be revenue lost from the KPIs
    select o.date, true, false, null
    from orders as o left join marts.kpi_daily as k using (date)
    where k.date is null and o.completed <> 0
"""
STAGES_ADD_UP_SQL = """
    with first_day as (
        select user_key, min(valid_from) as day from marts.user_lifecycle_history
        group by user_key
    ),
    -- people by their first day, summed up to each date (a join of every person with
    -- every date compared 366M pairs at 1M people: 2.4 s)
    firsts as (select day, count(*) as people from first_day group by day),
    days as (select distinct date from marts.lifecycle_daily),
    seen as (
        select days.date, coalesce(sum(firsts.people), 0) as people
        from days left join firsts on firsts.day <= days.date group by days.date
    ),
    staged as (select date, sum(users) as users from marts.lifecycle_daily group by date)
    select seen.date, seen.people = coalesce(staged.users, 0) as stages_equal_people_seen
    from seen left join staged using (date)
"""


def mart_suites(p: SuiteParams) -> list[Suite]:
    return [
        Suite("source_reconciliation", "marts.source_reconciliation", "reconciliation", [
            _e("raw_equals_staged_plus_duplicates_plus_quarantined",
               "ExpectColumnPairValuesToBeEqual", BLOCK, column_A="raw_rows",
               column_B="accounted_rows"),
            unique("source"),
        ], sql="select *, staged_rows + duplicate_rows + quarantined_rows as accounted_rows "
               "from marts.source_reconciliation"),
        Suite("dim_users", "marts.dim_users", "marts", [
            not_null("user_key"), unique("user_key"), in_set("lifecycle_stage", LIFECYCLE_STAGES),
            between("churn_probability", 0, 1), in_set("churn_risk_tier", RISK_TIERS),
            between("clv", low=0), in_set("value_tier", VALUE_TIERS),
            in_set("marketing_consent", [True, False]),
        ]),
        Suite("user_lifecycle_history", "marts.user_lifecycle_history", "marts", [
            _e("one_interval_per_person_and_start", "ExpectCompoundColumnsToBeUnique", BLOCK,
               column_list=["user_key", "valid_from"]),
            in_set("lifecycle_stage", LIFECYCLE_STAGES), always_true("interval_is_ordered"),
        ], sql="select *, valid_to is null or valid_to > valid_from as interval_is_ordered "
               "from marts.user_lifecycle_history"),
        Suite("lifecycle_daily", "marts.lifecycle_daily", "marts", [
            _e("one_row_per_date_and_stage", "ExpectCompoundColumnsToBeUnique", BLOCK,
               column_list=["date", "lifecycle_stage"]),
            between("users", low=0), in_set("lifecycle_stage", LIFECYCLE_STAGES),
        ]),
        Suite("lifecycle_daily_adds_up", "marts.lifecycle_daily", "marts", [
            always_true("stages_equal_people_seen"),
        ], sql=STAGES_ADD_UP_SQL),
        Suite("kpi_daily", "marts.kpi_daily", "marts", [
            not_null("date"), unique("date"), always_true("revenue_equals_completed_orders"),
            always_true("dau_wau_mau_ordered"), between("churn_rate", 0, 1),
        ], sql=KPI_REVENUE_SQL),
        Suite("cohort_retention", "marts.cohort_retention", "marts", [
            between("retention_rate", 0, 1), between("retention_or_later_rate", 0, 1),
            always_true("retained_within_cohort"),
            in_set("cohort_period", ["day", "week", "month"]),
        ], sql="select *, retained_users <= cohort_users as retained_within_cohort "
               "from marts.cohort_retention"),
        Suite("rfm_segments", "marts.rfm_segments", "marts", [
            unique("user_key"), between("r_score", 1, 5), between("f_score", 1, 5),
            between("m_score", 1, 5), not_null("rfm_segment"), between("monetary", low=0),
        ]),
        Suite("churn_reasons", "marts.churn_reasons", "marts", [
            between("share", 0, 1), always_true("shares_add_up_to_one"),
        ], sql="select dimension, abs(sum(share) - 1) < 1e-6 as shares_add_up_to_one, "
               "max(share) as share from marts.churn_reasons group by dimension"),
        Suite("campaign_effect", "marts.campaign_effect", "marts", [
            unique("campaign_id"), between("treated_return_rate", 0, 1),
            between("control_return_rate", 0, 1), always_true("uplift_inside_its_interval"),
            always_true("no_effect_without_control_group"),
        ], sql="select *, uplift is null or (uplift_ci_low <= uplift and uplift <= "
               "uplift_ci_high) as uplift_inside_its_interval, control_users > 0 or uplift "
               "is null as no_effect_without_control_group from marts.campaign_effect"),
    ]


def churn_suites(p: SuiteParams, features: list[str]) -> list[Suite]:
    """The training set is judged once it has `min_labelled_rows` labelled rows: a young
    business has too few for a rate to mean anything (and too few to train on)."""
    training = Suite("churn_training_set", "intermediate.int_churn_features", "churn", [
        _e("label_rate_within_bounds", "ExpectColumnMeanToBeBetween", BLOCK,
           column="label_rate", min_value=p.min_label_rate, max_value=p.max_label_rate),
        *[_e(f"{f}_not_entirely_null", "ExpectColumnValuesToNotBeNull", WARN, column=f,
             mostly=1e-9) for f in features],
    ], sql="select *, cast(label as double) as label_rate "
           "from intermediate.int_churn_features where label is not null and "
           "(select count(label) from intermediate.int_churn_features) >= "
           f"{p.min_labelled_rows}")
    scores = Suite("user_churn_scores", "marts.user_churn_scores", "churn", [
        unique("user_key"), not_null("churn_probability"), between("churn_probability", 0, 1),
        in_set("churn_risk_tier", RISK_TIERS), not_null("model_version"),
    ])
    return [training, scores]


def value_suites(p: SuiteParams) -> list[Suite]:
    return [
        Suite("user_clv", "marts.user_clv", "value", [
            unique("user_key"), between("p_alive", 0, 1), between("clv", low=0),
            between("expected_purchases", low=0), between("expected_avg_order_value", low=0),
            in_set("value_tier", VALUE_TIERS),
        ]),
        Suite("clv_model_params", "marts.clv_model_params", "value", [
            between("value", low=0, name="parameters_positive"),
            in_set("model", ["bg_nbd", "gamma_gamma"]),
        ]),
        Suite("winback_targets", "marts.winback_targets", "value", [
            unique("user_key"), always_true("target_is_reachable"),
            between("cumulative_cost", high=p.winback_budget + 1e-6, name="within_budget"),
            between("expected_value", low=0),
        ], sql="select t.*, coalesce(c.is_reachable, false) as target_is_reachable "
               "from marts.winback_targets as t left join "
               "intermediate.int_winback_candidates as c using (user_key)"),
    ]
