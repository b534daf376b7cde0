{#- One row per person and tag, for segmentation. Tags (a person can have several):

    prospect, new, activated, active, dormant, churned, reactivated   current lifecycle stage
    high_value    RFM monetary score 5 (top fifth of spend in the RFM window)
    champion      RFM segment Champions or Loyal
    at_risk       dormant, or RFM segment At Risk or Can't Lose
    recently_churned  churned in the last `lifecycle_churn_reasons_window_days`
    reachable     marketing consent given and not withdrawn -#}
{{
    config(
        pre_hook="{{ begin_uncompressed_strings() }}",
        post_hook="{{ end_uncompressed_strings() }}",
    )
}}
with stage_today as (
    select
        user_key,
        lifecycle_stage
    from {{ ref('int_person_day_stage') }}
    where day = {{ as_of_date() }}
),

rfm as (
    select * from {{ ref('rfm_segments') }}
),

profiles as (
    select * from {{ ref('int_user_profile') }}
),

tags as (
    select
        user_key,
        lifecycle_stage as tag
    from stage_today
    union all
    select
        user_key,
        'high_value' as tag
    from rfm
    where m_score = 5
    union all
    select
        user_key,
        'champion' as tag
    from rfm
    where rfm_segment in ('Champions', 'Loyal')
    union all
    select
        user_key,
        'at_risk' as tag
    from rfm
    where rfm_segment in ('At Risk', 'Can''t Lose')
    union all
    select
        user_key,
        'at_risk' as tag
    from stage_today
    where lifecycle_stage = 'dormant'
    union all
    select
        user_key,
        'recently_churned' as tag
    from {{ ref('int_recent_churners') }}
    union all
    select
        user_key,
        'reachable' as tag
    from profiles
    where marketing_consent
),

final as (
    select distinct
        tags.user_key,
        {{ as_of_date() }} as as_of_date,
        tags.tag
    from tags
    inner join profiles on tags.user_key = profiles.user_key
)

select * from final
