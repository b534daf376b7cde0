{#- One row per person not erased, up to the as-of date, with what win-back targeting needs
    besides the model outputs: lifecycle stage today, consent, the reason signal (latest
    stated cancel reason; else `service` after a recent support ticket; else `not_stated`)
    and the last time they were contacted. Consent is filtered again where targets are
    chosen; here every person is kept so the choice can be explained. -#}
with profiles as (
    select * from {{ ref('int_user_profile') }}
),

history as (
    select * from {{ ref('user_lifecycle_history') }}
    where valid_to is null
),

signals as (
    select * from {{ ref('int_person_reason_signals') }}
),

touches as (
    select
        user_key,
        max(sent_date) as last_contacted_date
    from {{ ref('int_campaign_touches') }}
    where touch_group = 'treatment'
    group by user_key
),

reasons as (
    select
        user_key,
        arg_max(reason, event_date) filter (where reason_source = 'stated') as stated_reason,
        max(event_date) filter (where reason_source = 'support_ticket') as last_ticket_date
    from signals
    group by user_key
),

final as (
    select
        profiles.user_key,
        coalesce(history.lifecycle_stage, 'prospect') as lifecycle_stage,
        profiles.marketing_consent and not profiles.consent_withdrawn as is_reachable,
        profiles.marketing_consent,
        profiles.consent_withdrawn,
        {{ reason_as_of('reasons.stated_reason', 'reasons.last_ticket_date', as_of_date()) }}
            as reason,
        case
            when reasons.stated_reason is not null then 'stated'
            when
                {{ reason_as_of('null', 'reasons.last_ticket_date', as_of_date()) }} = 'service'
                then 'support_ticket'
            else 'none'
        end as reason_source,
        touches.last_contacted_date
    from profiles
    left join history on profiles.user_key = history.user_key
    left join reasons on profiles.user_key = reasons.user_key
    left join touches on profiles.user_key = touches.user_key
)

select * from final
