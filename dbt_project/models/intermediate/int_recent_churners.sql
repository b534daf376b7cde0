{#- One row per person who entered `churned` in the last `lifecycle_churn_reasons_window_days`
    up to the as-of date (their latest such churn), with what explains it: stated cancel
    reason (latest `cancel_reason` before churning), acquisition channel, region, age band and
    tenure band (signup to churn), and the last day they were active. -#}
{{
    config(
        pre_hook="{{ begin_uncompressed_strings() }}",
        post_hook="{{ end_uncompressed_strings() }}",
    )
}}
with entries as (
    select
        user_key,
        max(valid_from) as churned_on
    from {{ ref('user_lifecycle_history') }}
    where
        lifecycle_stage = 'churned'
        and valid_from > {{ as_of_date() }} - {{ var('lifecycle_churn_reasons_window_days') }}
    group by user_key
),

last_activity as (
    select
        entries.user_key,
        max(activity.activity_date) as last_active_date
    from entries
    inner join {{ ref('int_person_day_activity') }} as activity
        on
            entries.user_key = activity.user_key
            and activity.is_active
            and entries.churned_on > activity.activity_date
    group by entries.user_key
),

stated as (
    select
        entries.user_key,
        arg_max(json_extract_string(events.properties, '$.cancel_reason'), events.occurred_at)
            as cancel_reason
    from entries
    inner join {{ ref('int_events') }} as events
        on
            entries.user_key = events.user_key
            and entries.churned_on >= events.event_date
            and events.event_type in ('subscription_cancel', 'survey_response')
            and json_extract_string(events.properties, '$.cancel_reason') is not null
    group by entries.user_key
),

final as (
    select
        entries.user_key,
        entries.churned_on,
        coalesce(last_activity.last_active_date, milestones.signup_date) as last_active_date,
        coalesce(stated.cancel_reason, 'not_stated') as cancel_reason,
        coalesce(users.acquisition_channel, 'unknown') as acquisition_channel,
        coalesce(users.region, 'unknown') as region,
        coalesce(users.age_band, 'unknown') as age_band,
        case
            when milestones.signup_date is null then 'unknown'
            when entries.churned_on - milestones.signup_date <= 30 then '0-30d'
            when entries.churned_on - milestones.signup_date <= 90 then '31-90d'
            when entries.churned_on - milestones.signup_date <= 180 then '91-180d'
            when entries.churned_on - milestones.signup_date <= 365 then '181-365d'
            else '365d+'
        end as tenure_band
    from entries
    left join stated on entries.user_key = stated.user_key
    left join last_activity on entries.user_key = last_activity.user_key
    left join {{ ref('int_person_milestones') }} as milestones on entries.user_key = milestones.user_key
    left join {{ ref('int_user_profile') }} as users on entries.user_key = users.user_key
)

select * from final
