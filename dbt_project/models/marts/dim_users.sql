{#- One row per person (user_key) seen on or before the as-of date, erased people excepted:
    profile, lifecycle stage today, RFM segment, churn risk, value and tags. Built after the
    churn scores and CLV (tag after_ml). -#}
{{ config(tags=['after_ml']) }}
with profiles as (
    select * from {{ ref('int_user_profile') }}
),

milestones as (
    select * from {{ ref('int_person_milestones') }}
),

history as (
    select * from {{ ref('user_lifecycle_history') }}
    where valid_to is null
),

rfm as (
    select * from {{ ref('rfm_segments') }}
),

churn as (
    select * from {{ source('ml', 'user_churn_scores') }}
),

value as (
    select * from {{ source('ml', 'user_clv') }}
),

tags as (
    select
        user_key,
        {{ sorted_string_agg('tag', "','") }} as tags
    from {{ ref('user_tags') }}
    group by user_key
),

final as (
    select
        profiles.user_key,
        {{ as_of_date() }} as as_of_date,
        profiles.user_id,
        profiles.first_seen_at,
        profiles.signup_at,
        milestones.signup_date,
        milestones.activation_date,
        milestones.is_activated_in_window,
        profiles.acquisition_channel,
        profiles.country,
        profiles.region,
        profiles.city,
        profiles.gender,
        profiles.birth_year,
        profiles.age_band,
        coalesce(history.lifecycle_stage, 'prospect') as lifecycle_stage,
        history.valid_from as lifecycle_stage_since,
        rfm.rfm_segment,
        rfm.value_tier as rfm_value_tier,
        rfm.recency_days,
        churn.churn_probability,
        churn.churn_risk_tier,
        churn.top_reasons as churn_top_reasons,
        churn.model_version as churn_model_version,
        value.clv,
        value.value_tier,
        value.p_alive,
        value.expected_purchases,
        profiles.marketing_consent,
        profiles.consent_withdrawn,
        profiles.is_known,
        profiles.is_shared_identifier,
        profiles.account_ids,
        profiles.device_ids,
        profiles.first_active_date,
        profiles.last_active_date,
        profiles.active_days,
        profiles.orders,
        profiles.revenue,
        tags.tags
    from profiles
    left join milestones on profiles.user_key = milestones.user_key
    left join history on profiles.user_key = history.user_key
    left join rfm on profiles.user_key = rfm.user_key
    left join churn on profiles.user_key = churn.user_key
    left join value on profiles.user_key = value.user_key
    left join tags on profiles.user_key = tags.user_key
)

select * from final
