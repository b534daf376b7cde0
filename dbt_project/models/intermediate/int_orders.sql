{#- One row per order (latest version) placed on or before the as-of date, with its person and
    business date; erased people are left out. Revenue counts completed orders only. Only
    the columns the models read: the table is written whole every run, and the account id,
    currency and store (in stg_orders) cost 0.9 of its 4.4 s at 5.4M orders. -#}
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
        orders.status,
        orders.channel,
        case when orders.status = 'completed' then orders.amount else 0 end as revenue
    from orders
    {{ join_person('orders') }}
)

select * from final
