{#- One row per campaign touch sent on or before the as-of date, with its person and business
    date; erased people are left out. -#}
with touches as (
    select * from {{ ref('stg_campaign_touches') }}
    where sent_at < {{ as_of_end_utc() }}
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
    inner join tuples
        on
            {{ identity_tuple_key(
                'touches.user_id', 'touches.anonymous_id', 'touches.email_hash', 'touches.phone_hash'
            ) }}
            = tuples.tuple_key
    where tuples.user_key not in (select erased.user_key from erased)
)

select * from final
