with touches as (
    select * from {{ ref('stg_campaign_touches__all') }}
),

final as (
    select
        touch_id,
        campaign_id,
        campaign_type,
        sent_at,
        channel,
        offer,
        coalesce(cost, 0) as cost,
        touch_group,
        user_id,
        anonymous_id,
        email_hash,
        phone_hash,
        _file,
        _staging_run
    from touches
    where reject_reason is null and delivery_rank = 1
)

select * from final
