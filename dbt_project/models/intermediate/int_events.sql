{#- One row per event that occurred on or before the as-of date, with its person and business
    date; erased people are left out. -#}
with events as (
    select * from {{ ref('stg_events') }}
    where occurred_at < {{ as_of_end_utc() }}
),

final as (
    select
        tuples.user_key,
        events.event_id,
        events.event_type,
        events.occurred_at,
        {{ business_date('events.occurred_at') }} as event_date,
        events.channel,
        events.user_id,
        events.amount,
        events.currency,
        events.order_id,
        events.properties,
        events.is_known_event_type,
        events.event_type in ({{ sql_list(var('activity_event_types')) }}) as is_activity
    from events
    {{ join_person('events') }}
)

select * from final
