{#- A view: it filters stg_events__all, and writing its 100M rows again cost more (65 s at
    the large benchmark) than its few readers spend filtering. -#}
{{ config(materialized="view") }}

with events as (
    select * from {{ ref('stg_events__all') }}
),

final as (
    select
        event_id,
        _event_key,
        event_type,
        occurred_at,
        channel,
        user_id,
        anonymous_id,
        email_hash,
        phone_hash,
        amount,
        currency,
        order_id,
        properties,
        event_type in (
            'signup', 'login', 'session_start', 'page_view', 'feature_use', 'add_to_cart',
            'purchase', 'refund', 'subscription_start', 'subscription_renew',
            'subscription_cancel', 'support_ticket', 'survey_response'
        ) as is_known_event_type,
        _file,
        _staging_run
    from events
    where reject_reason is null and delivery_rank = 1
)

select * from final
