{#- One row per person per business day with at least one completed order, up to the as-of
    date: the input of the CLV models (same-day orders merge into one purchase). -#}
{{
    config(
        pre_hook="{{ begin_uncompressed_strings() }}",
        post_hook="{{ end_uncompressed_strings() }}",
    )
}}
with orders as (
    select * from {{ ref('int_orders') }}
    where status = 'completed'
),

final as (
    select
        user_key,
        order_date as purchase_date,
        count(*) as orders,
        sum(amount) as amount
    from orders
    group by user_key, order_date
)

select * from final
