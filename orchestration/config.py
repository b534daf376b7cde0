"""The one YAML config file: every tunable, its default, and validation with clear errors.

The same validated object feeds dbt (as --vars, see `dbt_vars`) and Python alike. An unknown
key or a bad value raises ConfigError naming the key and what is allowed.
"""

from __future__ import annotations

import zoneinfo
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

KNOWN_EVENT_TYPES = [
    "signup", "login", "session_start", "page_view", "feature_use", "add_to_cart", "purchase",
    "refund", "subscription_start", "subscription_renew", "subscription_cancel",
    "support_ticket", "survey_response",
]
DEFAULT_ACTIVITY_TYPES = [t for t in KNOWN_EVENT_TYPES
                          if t not in ("support_ticket", "survey_response")]


class ConfigError(Exception):
    """The config file is unreadable, has an unknown key or a bad value."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IdentityConfig(_Section):
    max_accounts_per_identifier: int = Field(
        1, ge=1,
        description="An anonymous id, email or phone seen with more distinct account ids "
                    "(user_id) than this is shared (family tablet, store till phone) and "
                    "links nobody.",
    )


class LifecycleConfig(_Section):
    activation_event_types: list[str] = Field(
        default_factory=lambda: ["purchase", "subscription_start"], min_length=1,
        description="Event types that count as the activation action (an order always "
                    "does).")
    activation_window_days: int = Field(
        14, ge=1, description="A new person is activated by doing the activation action "
                              "within this many days of signup.")
    activated_period_days: int = Field(
        30, ge=1, description="Days a person stays in stage `activated` after activating "
                              "(then `active`).")
    dormant_after_days: int = Field(
        14, ge=1, description="Days without activity after which a person is `dormant`.")
    churned_after_days: int = Field(
        60, ge=2, description="Days without activity after which a person is `churned`.")
    subscription_period_days: int = Field(
        30, ge=1, description="Days one subscription payment (start or renew) covers.")
    subscription_grace_days: int = Field(
        7, ge=0, description="A subscriber whose paid period ended this many days ago, with "
                             "no activity since, is `churned`.")
    reactivated_period_days: int = Field(
        30, ge=1, description="Days a person stays in stage `reactivated` after returning "
                              "from `churned` (then `active`).")
    churn_reasons_window_days: int = Field(
        90, ge=1, description="`churn_reasons` and `churn_behaviour` cover people who churned "
                              "in this many days up to the as-of date.")
    behaviour_window_days: int = Field(
        28, ge=7, description="Days before churn (or before the as-of date, for retained "
                              "people) compared in `churn_behaviour`.")

    @model_validator(mode="after")
    def _thresholds_in_order(self) -> LifecycleConfig:
        if self.churned_after_days <= self.dormant_after_days:
            raise ValueError(
                f"churned_after_days ({self.churned_after_days}) must be greater than "
                f"dormant_after_days ({self.dormant_after_days})")
        return self


class RetentionConfig(_Section):
    max_days: int = Field(30, ge=1, description="Day-cohort periods reported (0..N).")
    max_weeks: int = Field(26, ge=1, description="Week-cohort periods reported (0..N).")
    max_months: int = Field(12, ge=1, description="Month-cohort periods reported (0..N).")


class RfmConfig(_Section):
    window_days: int = Field(365, ge=1, description="Frequency and monetary value count "
                                                   "completed orders in this many days up to "
                                                   "the as-of date.")


class ChurnConfig(_Section):
    horizon_days: int = Field(
        30, ge=1, description="Predict whether a person churns (enters stage `churned`) "
                              "within this many days.")
    snapshot_every_days: int = Field(
        14, ge=1, description="Days between the past feature snapshots of the training set.")
    training_snapshots: int = Field(
        12, ge=3, description="Labelled snapshots in the training set (the newest is the test "
                              "split, the one before it validation, the rest training).")
    max_training_rows: int = Field(
        400_000, ge=1_000, description="Rows sampled from the training split at most (the "
                                       "validation and test splits are never sampled).")
    learning_rate: float = Field(0.1, gt=0, le=1, description="XGBoost learning rate.")
    max_depth: int = Field(5, ge=1, le=16, description="XGBoost tree depth.")
    n_estimators: int = Field(600, ge=10, description="XGBoost rounds at most (early stopping "
                                                    "on the validation split decides).")
    early_stopping_rounds: int = Field(40, ge=5, description="Rounds without validation "
                                                            "improvement before stopping.")
    early_stopping_min_delta: float = Field(
        1e-4, ge=0, description="Smallest validation PR-AUC gain that counts as an improvement "
                                "for early stopping; the model keeps the trees up to the last "
                                "such gain.")
    subsample: float = Field(0.9, gt=0, le=1, description="XGBoost row subsample.")
    colsample_bytree: float = Field(0.9, gt=0, le=1, description="XGBoost column subsample.")
    min_child_weight: float = Field(5.0, ge=0, description="XGBoost min child weight.")
    seed: int = Field(42, description="Seed for sampling and XGBoost.")
    promotion_max_auc_drop: float = Field(
        0.0, ge=0, le=1, description="A new model replaces the current one only if its test "
                                     "ROC-AUC is at least the current model's on the same "
                                     "holdout minus this.")
    max_model_age_days: int = Field(30, ge=1, description="Retrain when the current model is "
                                                          "older than this.")
    psi_warning: float = Field(0.2, gt=0, description="Population stability index above which "
                                                      "a feature or the score has drifted.")
    risk_tiers_by: str = Field("probability", pattern="^(probability|share)$",
                               description="Cut risk tiers by calibrated probability or by "
                                           "share of the scored base.")
    high_risk_cutoff: float = Field(0.5, gt=0, lt=1, description="High risk: probability at "
                                                                 "least this (or the top share).")
    medium_risk_cutoff: float = Field(0.2, gt=0, lt=1, description="Medium risk: probability at "
                                                                   "least this (or the next "
                                                                   "share).")

    @model_validator(mode="after")
    def _tiers_in_order(self) -> ChurnConfig:
        if self.risk_tiers_by == "probability" and self.medium_risk_cutoff >= self.high_risk_cutoff:
            raise ValueError("medium_risk_cutoff must be below high_risk_cutoff")
        return self


class ClvConfig(_Section):
    horizon_months: int = Field(12, ge=1, le=120, description="CLV and expected purchases "
                                                               "cover this many months (of "
                                                               "30 days) after the as-of date.")
    annual_discount_rate: float = Field(0.10, ge=0, lt=1, description="Annual rate at which "
                                                                    "future months' value is "
                                                                    "discounted.")
    high_value_share: float = Field(0.2, gt=0, lt=1, description="value_tier `high`: this top "
                                                               "share of buyers by CLV.")
    medium_value_share: float = Field(0.3, gt=0, lt=1, description="value_tier `medium`: the "
                                                                 "next share of buyers.")
    holdout_days: int = Field(90, ge=7, description="The holdout check fits on orders up to "
                                                    "this many days before the as-of date and "
                                                    "predicts those days.")
    holdout_check_every_days: int = Field(7, ge=1, description="The holdout check (a second "
                                                               "fit) runs again once the "
                                                               "stored one is this many days "
                                                               "old; 1 = every day.")
    refit_every_days: int = Field(7, ge=1, description="The CLV models are fitted again "
                                                       "once the stored fit is this many "
                                                       "days old; in between, today's "
                                                       "purchases are scored with its "
                                                       "parameters. 1 = fit every day.")
    refit_max_change: float = Field(0.05, ge=0, description="Fit again sooner when the "
                                                            "buyers or the repeat buyers "
                                                            "changed by more than this share "
                                                            "since the stored fit.")
    min_repeat_customers: int = Field(20, ge=5, description="Fewer people with a repeat "
                                                          "purchase than this: no CLV fit "
                                                          "(clv stays null, with a warning).")

    @model_validator(mode="after")
    def _shares_fit(self) -> ClvConfig:
        if self.high_value_share + self.medium_value_share >= 1:
            raise ValueError("high_value_share + medium_value_share must be below 1")
        return self


class CampaignsConfig(_Section):
    return_window_days: int = Field(30, ge=1, description="A touched person has returned when "
                                                          "active within this many days after "
                                                          "the send date.")


class OfferRule(_Section):
    offer: str = Field(..., min_length=1)
    channel: str = Field(..., pattern="^(email|sms|push|phone|coupon)$")


DEFAULT_OFFERS = {
    "price": {"offer": "discount_20pct", "channel": "coupon"},
    "competitor": {"offer": "discount_20pct", "channel": "coupon"},
    "service": {"offer": "service_call", "channel": "phone"},
    "quality": {"offer": "service_call", "channel": "phone"},
    "no_need": {"offer": "whats_new_message", "channel": "email"},
    "default": {"offer": "come_back_message", "channel": "email"},
}


class WinbackConfig(_Section):
    budget: float = Field(1000.0, ge=0, description="Most the target list may cost (sum of "
                                                    "the expected cost per contact).")
    include_high_risk: bool = Field(True, description="Target people at high churn risk as "
                                                      "well as those already churned.")
    cooldown_days: int = Field(30, ge=0, description="People contacted (treated) this many "
                                                     "days before the as-of date or less are "
                                                     "not targeted again.")
    prior_return_rate: float = Field(0.05, gt=0, lt=1, description="Probability of return if "
                                                                 "contacted, before any "
                                                                 "campaign history.")
    prior_strength: float = Field(50.0, gt=0, description="Weight of that prior, in contacted "
                                                         "people: past campaigns move the "
                                                         "estimate once they have more.")
    channel_costs: dict[str, float] = Field(
        default_factory=lambda: {"email": 0.05, "sms": 0.12, "push": 0.01, "phone": 4.0,
                                 "coupon": 2.5},
        description="Cost per contact by channel, used where past touches do not show it.")
    offers: dict[str, OfferRule] = Field(
        default_factory=lambda: {k: OfferRule(**v) for k, v in DEFAULT_OFFERS.items()},
        description="Offer and channel per reason (stated cancel reason, `service` after "
                    "support tickets, `not_stated`); `default` for any other reason.")

    @field_validator("offers")
    @classmethod
    def _has_default(cls, value: dict[str, OfferRule]) -> dict[str, OfferRule]:
        if "default" not in value:
            raise ValueError("offers needs a `default` entry")
        return {k.lower(): v for k, v in value.items()}

    @model_validator(mode="after")
    def _costs_known(self) -> WinbackConfig:
        missing = {r.channel for r in self.offers.values()} - set(self.channel_costs)
        if missing:
            raise ValueError(f"channel_costs has no cost for {sorted(missing)}")
        if any(v < 0 for v in self.channel_costs.values()):
            raise ValueError("channel_costs must not be negative")
        return self


class QualityConfig(_Section):
    future_tolerance_hours: int = Field(
        24, ge=0, description="A timestamp later than the modification time of its file plus "
                              "this many hours is quarantined (`future_timestamp`).")
    max_rows_validated: int = Field(
        250_000, ge=1_000, description="Great Expectations suites validate about this many "
                                         "rows of a larger table (a repeatable random sample, "
                                         "each row kept with probability this / rows); dbt "
                                         "tests always see every row.")
    volume_history_days: int = Field(28, ge=7, description="Days before the as-of date that a "
                                                           "source's daily volume is compared "
                                                           "with.")
    volume_min_history_days: int = Field(
        14, ge=1, description="A source is judged for volume and freshness only with rows on "
                              "at least this many of those days.")
    volume_min_daily_rows: int = Field(
        20, ge=1, description="... and a median of at least this many rows a day.")
    volume_min_ratio: float = Field(0.3, ge=0, description="Rows on the as-of day below this "
                                                           "share of the median fail the "
                                                           "volume check.")
    volume_max_ratio: float = Field(5.0, gt=1, description="Rows on the as-of day above this "
                                                           "multiple of the median fail it.")
    freshness_max_lag_days: int = Field(1, ge=0, description="A source whose newest row is "
                                                             "more days before the as-of date "
                                                             "fails the freshness check.")
    volume_severity: str = Field("block", pattern="^(block|warn)$",
                                 description="`block` (stop the run) or `warn` for volume and "
                                             "freshness failures.")
    min_label_rate: float = Field(0.005, ge=0, le=1, description="The churn training set's "
                                                               "label rate must be at least "
                                                               "this ...")
    max_label_rate: float = Field(0.8, ge=0, le=1, description="... and at most this.")
    min_labelled_rows: int = Field(1000, ge=1, description="The label rate is judged once the "
                                                         "training set has this many labelled "
                                                         "rows.")
    data_docs: bool = Field(True, description="Build Great Expectations Data Docs into "
                                              "WAREHOUSE/data_docs/.")
    data_docs_keep_runs: int = Field(
        30, ge=1, description="Data Docs keep each suite's pages of this many runs (older ones "
                              "are removed; every result stays in data_quality_results).")


class EngineConfig(_Section):
    memory_limit: str = Field(
        "3GB", pattern=r"^[0-9]+(\.[0-9]+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="Memory DuckDB may use for the dbt models before spilling to "
                    "WAREHOUSE/work.duckdb.tmp (e.g. 3GB, 12GiB).")
    dbt_threads: int = Field(
        2, ge=1, le=64,
        description="dbt models built at the same time by a first build or a full refresh. "
                    "They share `memory_limit` (each query already uses every core): use 1 "
                    "for the largest data.")
    daily_dbt_threads: int = Field(
        2, ge=1, le=64,
        description="dbt models built at the same time by a build on top of an earlier "
                    "one (every incremental model already in work.duckdb, no full refresh): "
                    "its models read and write a day's changes, and two at once keep both "
                    "cores busy through dbt's own work and DuckDB's single-threaded steps. "
                    "The model builds after a staging build that wrote a source's every row "
                    "again (a new PII key: every person is rebuilt) take dbt_threads.")
    checkpoint_threshold: str = Field(
        "1GB", pattern=r"^[0-9]+(\.[0-9]+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="During a dbt build DuckDB folds its write-ahead log into work.duckdb "
                    "once the log passes this size, and at the end of the build (DuckDB's "
                    "own default is 16MB; a daily run at 1M users writes ~150MB of log).")


class ScheduleConfig(_Section):
    partitions_start_date: str = Field(
        "2025-01-01", pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
        description="First business date of the job's daily partitions in the Dagster UI: "
                    "the earliest date a backfill can start.")

    @field_validator("partitions_start_date")
    @classmethod
    def _real_date(cls, value: str) -> str:
        try:
            date.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from exc
        return value


class UlmConfig(_Section):
    timezone: str = Field("UTC", description="Time zone of timestamps written without an "
                                             "offset in the raw files.")
    business_timezone: str = Field("UTC", description="Time zone of the business calendar: "
                                                      "dates, days and the as-of day.")
    currency: str = Field("USD", description="ISO 4217 currency for rows that name none.")
    default_phone_country_code: str = Field(
        "1", pattern=r"^[1-9][0-9]{0,2}$",
        description="Country calling code given to phone numbers written without one.")
    activity_event_types: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ACTIVITY_TYPES), min_length=1,
        description="Event types that make a person active on a day (an order always does).")
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    rfm: RfmConfig = Field(default_factory=RfmConfig)
    churn: ChurnConfig = Field(default_factory=ChurnConfig)
    clv: ClvConfig = Field(default_factory=ClvConfig)
    campaigns: CampaignsConfig = Field(default_factory=CampaignsConfig)
    winback: WinbackConfig = Field(default_factory=WinbackConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)

    @field_validator("timezone", "business_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as "
                             "'UTC', 'Europe/Berlin' or 'Asia/Shanghai')") from exc
        return value

    @field_validator("currency")
    @classmethod
    def _iso_currency(cls, value: str) -> str:
        if len(value) != 3 or not value.isalpha():
            raise ValueError(f"{value!r} is not an ISO 4217 code such as 'USD' or 'CNY'")
        return value.upper()

    @field_validator("activity_event_types")
    @classmethod
    def _no_blank_types(cls, value: list[str]) -> list[str]:
        if any(not t.strip() for t in value):
            raise ValueError("event types must be non-empty strings")
        return [t.strip().lower() for t in value]


def _format_errors(path: Path | None, exc: ValidationError) -> str:
    where = f"config file {path}" if path else "config"
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown key `{key}`")
        else:
            lines.append(f"`{key}`: {err['msg']} (got {err.get('input')!r})")
    return f"{where}: " + "; ".join(lines) + ". See the configuration reference in README.md."


def parse_config(data: dict[str, Any] | None, path: Path | None = None) -> UlmConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping of keys to "
                          f"values, not {type(data).__name__}.")
    try:
        return UlmConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc)) from None


def load_config(path: str | Path | None) -> UlmConfig:
    """The validated config; defaults when path is None or empty."""
    if not path:
        return UlmConfig()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}.") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    return parse_config(data, path)


def dbt_vars(config: UlmConfig, as_of_date: str, warehouse_dir: Path,
             dbt_threads: int | None = None) -> dict[str, Any]:
    """The dbt --vars for one run (names as in dbt_project.yml); `dbt_threads` is the
    build's (default `engine.dbt_threads`)."""
    return {
        "as_of_date": as_of_date,
        "warehouse_dir": str(Path(warehouse_dir).resolve()),
        "source_timezone": config.timezone,
        "business_timezone": config.business_timezone,
        "currency": config.currency,
        "default_phone_country_code": config.default_phone_country_code,
        "activity_event_types": config.activity_event_types,
        "identity_max_accounts_per_identifier": config.identity.max_accounts_per_identifier,
        **{f"lifecycle_{k}": v for k, v in config.lifecycle.model_dump().items()},
        **{f"retention_{k}": v for k, v in config.retention.model_dump().items()},
        **{f"rfm_{k}": v for k, v in config.rfm.model_dump().items()},
        "churn_horizon_days": config.churn.horizon_days,
        "churn_snapshot_every_days": config.churn.snapshot_every_days,
        "churn_training_snapshots": config.churn.training_snapshots,
        "campaign_return_window_days": config.campaigns.return_window_days,
        "quality_future_tolerance_hours": config.quality.future_tolerance_hours,
        "engine_memory_limit": config.engine.memory_limit,
        "engine_dbt_threads": dbt_threads or config.engine.dbt_threads,
        "engine_checkpoint_threshold": config.engine.checkpoint_threshold,
    }


def reference_table() -> list[tuple[str, str, str]]:
    """(key, default, description) for every key, for README and `ulm config`."""
    rows = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{prefix}{name}.")
                continue
            default = field.get_default(call_default_factory=True)
            if isinstance(default, dict):
                default = {k: v.model_dump() if isinstance(v, BaseModel) else v
                           for k, v in default.items()}
            rows.append((prefix + name, repr(default), field.description or ""))

    walk(UlmConfig, "")
    return rows
