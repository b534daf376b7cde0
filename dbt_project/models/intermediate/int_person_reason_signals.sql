{#- One row per person per day with a signal of why they may leave, up to the as-of date: a
    stated cancel reason (subscription_cancel or survey_response with `cancel_reason`), or a
    support ticket (a service problem). Win-back reads the latest signal before a date. -#}
with events as (
    select * from {{ ref('int_events') }}
    where event_type in ('subscription_cancel', 'survey_response', 'support_ticket')
),

signals as (
    select
        user_key,
        event_date,
        occurred_at,
        case
            when event_type = 'support_ticket' then 'service'
            else lower(json_extract_string(properties, '$.cancel_reason'))
        end as reason,
        case when event_type = 'support_ticket' then 'support_ticket' else 'stated' end
            as reason_source
    from events
),

final as (
    select
        user_key,
        event_date,
        reason_source,
        arg_max(reason, occurred_at) as reason
    from signals
    where reason is not null
    group by user_key, event_date, reason_source
)

select * from final
