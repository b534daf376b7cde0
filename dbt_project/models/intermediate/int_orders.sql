{#- One row per order (latest version) placed on or before the as-of date, with its person and
    business date; erased people are left out. Revenue counts completed orders only. -#}
with orders as (
    select * from {{ ref('stg_orders') }}
    where ordered_at < {{ as_of_end_utc() }}
),

tuples as (
    select * from {{ ref('int_identity_tuples') }}
),

erased as (
    select * from {{ ref('int_erased_users') }}
),

final as (
    select
        tuples.user_key,
        orders.order_id,
        orders.ordered_at,
        {{ business_date('orders.ordered_at') }} as order_date,
        orders.amount,
        orders.currency,
        orders.status,
        orders.channel,
        orders.store_id,
        orders.user_id,
        case when orders.status = 'completed' then orders.amount else 0 end as revenue
    from orders
    inner join tuples
        on
            {{ identity_tuple_key('orders.user_id', 'orders.anonymous_id', 'orders.email_hash', 'orders.phone_hash') }}
            = tuples.tuple_key
    where tuples.user_key not in (select erased.user_key from erased)
)

select * from final
