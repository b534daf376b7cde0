{#- One row per person per business day on which they did anything (an event or an order),
    up to the as-of date. `is_active` follows the contract: an order, or an event whose type
    is in `activity_event_types`. Rebuilt per person and day (macros/changed_people.sql):
    every day of a person in int_changed_people whose whole history changed, and the days
    from `changed_from` of the others (a day's row depends only on that day's events and
    orders). -#}
{{
    config(
        materialized=("incremental" if target.type == "duckdb" else "table"),
        incremental_strategy="append",
        on_schema_change="sync_all_columns",
        pre_hook="{{ forget_changed_activity() }}",
        post_hook="{{ chain_activity_built() }}",
    )
}}
-- depends_on: {{ ref('int_changed_people') }}
with events as (
    {{ changed_activity_sources(ref('int_events'), 'event_date') }}
),

orders as (
    {{ changed_activity_sources(ref('int_orders'), 'order_date') }}
),

event_days as (
    select
        user_key,
        event_date as activity_date,
        count(*) as events,
        count(*) filter (where is_activity) as activity_events,
        count(*) filter (where event_type = 'session_start') as sessions,
        count(*) filter (where event_type = 'purchase') as purchase_events,
        count(*) filter (where event_type = 'support_ticket') as support_tickets,
        count(*) filter (
            where event_type in ({{ sql_list(var('lifecycle_activation_event_types')) }})
        ) as activation_events,
        count(*) filter (
            where event_type in ('subscription_start', 'subscription_renew')
        ) as subscription_payments,
        count(try_cast({{ json_text('properties', '$.nps') }} as integer)) as nps_responses,
        sum(try_cast({{ json_text('properties', '$.nps') }} as integer)) as nps_total,
        count(*) filter (where event_type = 'subscription_cancel') as subscription_cancels,
        count(*) filter (where channel like 'app%') as app_events,
        count(*) filter (where channel = 'web') as web_events,
        count(*) filter (where channel = 'mini_program') as mini_program_events,
        count(distinct channel) as event_channels
    from events
    group by user_key, event_date
),

order_days as (
    select
        user_key,
        order_date as activity_date,
        count(*) as orders,
        count(*) filter (where status = 'completed') as completed_orders,
        count(*) filter (where channel = 'store') as store_orders,
        sum(revenue) as revenue
    from orders
    group by user_key, order_date
),

final as (
    select
        coalesce(e.user_key, o.user_key) as user_key,
        coalesce(e.activity_date, o.activity_date) as activity_date,
        coalesce(e.events, 0) as events,
        coalesce(e.activity_events, 0) as activity_events,
        coalesce(e.sessions, 0) as sessions,
        coalesce(e.purchase_events, 0) as purchase_events,
        coalesce(e.support_tickets, 0) as support_tickets,
        coalesce(e.activation_events, 0) as activation_events,
        coalesce(e.subscription_payments, 0) as subscription_payments,
        coalesce(e.nps_responses, 0) as nps_responses,
        coalesce(e.nps_total, 0) as nps_total,
        coalesce(e.subscription_cancels, 0) as subscription_cancels,
        coalesce(e.app_events, 0) as app_events,
        coalesce(e.web_events, 0) as web_events,
        coalesce(e.mini_program_events, 0) as mini_program_events,
        coalesce(e.event_channels, 0) as event_channels,
        coalesce(o.orders, 0) as orders,
        coalesce(o.completed_orders, 0) as completed_orders,
        coalesce(o.store_orders, 0) as store_orders,
        coalesce(o.revenue, 0) as revenue,
        coalesce(e.activity_events, 0) > 0 or coalesce(o.orders, 0) > 0 as is_active
    from event_days as e
    full outer join order_days as o
        on e.user_key = o.user_key and e.activity_date = o.activity_date
)

select * from final
