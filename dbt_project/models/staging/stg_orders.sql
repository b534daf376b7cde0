with orders as (
    select * from {{ ref('stg_orders__all') }}
),

final as (
    select
        order_id,
        ordered_at,
        updated_at,
        amount,
        currency,
        status,
        channel,
        store_id,
        user_id,
        anonymous_id,
        email_hash,
        phone_hash,
        _file
    from orders
    where reject_reason is null and version_rank = 1
)

select * from final
