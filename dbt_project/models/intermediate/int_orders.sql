{#- One row per order (latest version) placed on or before the as-of date, with its person and
    business date; erased people are left out. Revenue counts completed orders only. -#}
with orders as (
    select * from {{ ref('stg_orders') }}
    where ordered_at < {{ as_of_end_utc() }}
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
    {{ join_person('orders') }}
)

select * from final
