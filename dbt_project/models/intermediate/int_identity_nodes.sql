{#- One row per identifier (node of the identity graph), with whether it may link people.

    Rule for shared identifiers: an anonymous id, email or phone seen together with more than
    `identity_max_accounts_per_identifier` distinct account ids (user_id) is shared (a family
    tablet, a store's till phone, a team mailbox). It links nobody: it stays a person of its
    own, and rows identified only by it are attributed to that shared person.

    Each kind of identifier is grouped on its own: an account id is linked to itself only,
    and the others count their distinct accounts from (identifier, account) pairs. One
    grouping of all four kinds' pairs took 2.0-2.3 s at a million people, so 1.2 s. -#}
{{
    config(
        tags=['identity'],
        pre_hook="{{ begin_uncompressed_strings() }}",
        post_hook="{{ end_uncompressed_strings() }}",
    )
}}
{%- set kinds = {'anonymous_id': 'anonymous_node', 'email': 'email_node', 'phone': 'phone_node'} %}
with sightings as (
    select * from {{ ref('int_identifier_sightings') }}
),

accounts as (
    select
        user_node as node_id,
        'user_id' as node_type,
        min(first_seen_at) as first_seen_at,
        cast(1 as bigint) as linked_accounts,
        false as is_shared
    from sightings
    where user_node is not null
    group by user_node
),

{%- for kind, column in kinds.items() %}

    -- distinct (identifier, account) pairs first: counting them is half the time of a
    -- count(distinct) over every sighting
    {{ kind }}_pairs as (
        select
            {{ column }} as node_id,
            user_node,
            min(first_seen_at) as first_seen_at
        from sightings
        where {{ column }} is not null
        group by {{ column }}, user_node
    ),

    {{ kind }}_nodes as (
        select
            node_id,
            '{{ kind }}' as node_type,
            min(first_seen_at) as first_seen_at,
            count(user_node) as linked_accounts,
            count(user_node) > {{ var('identity_max_accounts_per_identifier') }} as is_shared
        from {{ kind }}_pairs
        group by node_id
    ),
{%- endfor %}

final as (
    select * from accounts
    {%- for kind in kinds %}
        union all
        select * from {{ kind }}_nodes
    {%- endfor %}
)

select * from final
