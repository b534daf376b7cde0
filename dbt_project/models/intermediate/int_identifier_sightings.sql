{#- Which identifiers were seen together, from every staged source up to the as-of date.
    The events come summed already (int_event_sightings, which a daily run only adds the
    new events to); every other row counts once. -#}
{{
    config(
        tags=['identity'],
        pre_hook="{{ begin_uncompressed_strings() }}",
        post_hook="{{ end_uncompressed_strings() }}",
    )
}}
with events as (
    select
        user_id,
        anonymous_id,
        email_hash,
        phone_hash,
        first_seen_at as seen_at,
        sightings
    from {{ ref('int_event_sightings') }}
),

orders as (
    select
        user_id,
        anonymous_id,
        email_hash,
        phone_hash,
        ordered_at as seen_at,
        1 as sightings
    from {{ ref('stg_orders') }}
),

customers as (
    select
        user_id,
        null as anonymous_id,
        email_hash,
        phone_hash,
        updated_at as seen_at,
        1 as sightings
    from {{ ref('stg_customers') }}
),

touches as (
    select
        user_id,
        anonymous_id,
        email_hash,
        phone_hash,
        sent_at as seen_at,
        1 as sightings
    from {{ ref('stg_campaign_touches') }}
),

requests as (
    select
        user_id,
        null as anonymous_id,
        email_hash,
        phone_hash,
        requested_at as seen_at,
        1 as sightings
    from {{ ref('stg_privacy_requests') }}
),

unioned as (
    select * from events
    union all
    select * from orders
    union all
    select * from customers
    union all
    select * from touches
    union all
    select * from requests
),

-- grouped by the identifiers themselves, the node ids built once per combination (not
-- once per row: 1.9-2.5 -> 1.5-1.7 s a large day, as a query alone)
combinations as (
    select
        user_id,
        anonymous_id,
        email_hash,
        phone_hash,
        min(seen_at) as first_seen_at,
        cast(sum(sightings) as bigint) as sightings
    from unioned
    where seen_at < {{ as_of_end_utc() }}
    group by user_id, anonymous_id, email_hash, phone_hash
),

final as (
    select
        'u:' || user_id as user_node,
        'a:' || anonymous_id as anonymous_node,
        'e:' || email_hash as email_node,
        'p:' || phone_hash as phone_node,
        first_seen_at,
        sightings
    from combinations
)

select * from final
