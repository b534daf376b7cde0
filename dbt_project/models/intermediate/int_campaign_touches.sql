{#- One row per campaign touch sent on or before the as-of date, with its person and business
    date; erased people are left out. -#}
with touches as (
    select * from {{ ref('stg_campaign_touches') }}
    where sent_at < {{ as_of_end_utc() }}
),

final as (
    select
        tuples.user_key,
        touches.touch_id,
        touches.campaign_id,
        touches.campaign_type,
        touches.sent_at,
        {{ business_date('touches.sent_at') }} as sent_date,
        touches.channel,
        touches.offer,
        touches.cost,
        touches.touch_group
    from touches
    {{ join_person('touches') }}
)

select * from final
