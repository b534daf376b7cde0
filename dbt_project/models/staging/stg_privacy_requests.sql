with requests as (
    select * from {{ ref('stg_privacy_requests__all') }}
),

final as (
    select
        request_id,
        request_type,
        requested_at,
        user_id,
        email_hash,
        phone_hash,
        _file
    from requests
    where reject_reason is null and delivery_rank = 1
)

select * from final
