{#- One row per pair of identifiers seen on the same row (neither of them shared). Each row's
    identifiers are linked to its strongest one (account id, then email, phone, device). -#}
{{
    config(
        tags=['identity'],
        pre_hook="{{ begin_uncompressed_strings() }}",
        post_hook="{{ end_uncompressed_strings() }}",
    )
}}
with sightings as (
    select * from {{ ref('int_identifier_sightings') }}
),

shared as (
    select node_id from {{ ref('int_identity_nodes') }}
    where is_shared
),

usable as (
    select
        case when su.node_id is null then sightings.user_node end as user_node,
        case when sa.node_id is null then sightings.anonymous_node end as anonymous_node,
        case when se.node_id is null then sightings.email_node end as email_node,
        case when sp.node_id is null then sightings.phone_node end as phone_node
    from sightings
    left join shared as su on sightings.user_node = su.node_id
    left join shared as sa on sightings.anonymous_node = sa.node_id
    left join shared as se on sightings.email_node = se.node_id
    left join shared as sp on sightings.phone_node = sp.node_id
),

anchored as (
    select
        coalesce(user_node, email_node, phone_node, anonymous_node) as anchor,
        anonymous_node,
        email_node,
        phone_node
    from usable
),

pairs as (
    select
        anchor as src,
        email_node as dst
    from anchored
    where email_node is not null
    union
    select
        anchor,
        phone_node
    from anchored
    where phone_node is not null
    union
    select
        anchor,
        anonymous_node
    from anchored
    where anonymous_node is not null
),

final as (
    select
        src,
        dst
    from pairs
    where src <> dst
)

select * from final
