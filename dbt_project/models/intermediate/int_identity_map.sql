{#- One row per identifier with the person (user_key) it belongs to.

    Persons are the connected components of the identifier graph. A person's key is a keyed
    hash of the component's earliest-seen identifier, so it stays the same as data grows:
    new identifiers joining a person do not change it; only a merge of two persons does (the
    merged person keeps the older key). -#}
{{ config(tags=['identity']) }}
with components as (
    {{ connected_components(
        "select node_id from " ~ ref('int_identity_nodes'),
        "select src, dst from " ~ ref('int_identity_edges')
    ) }}
),

nodes as (
    select * from {{ ref('int_identity_nodes') }}
),

labelled as (
    select
        nodes.node_id,
        nodes.node_type,
        nodes.first_seen_at,
        nodes.is_shared,
        components.label
    from nodes
    inner join components on nodes.node_id = components.node_id
),

anchors as (
    select
        label,
        {{ value_at_min('node_id', sortable_timestamp('first_seen_at') ~ ' || node_id') }} as anchor_node
    from labelled
    group by label
),

final as (
    select
        labelled.node_id,
        labelled.node_type,
        labelled.is_shared,
        labelled.first_seen_at,
        'p_' || left({{ pii_hash('person', 'anchors.anchor_node') }}, 24) as user_key
    from labelled
    inner join anchors on labelled.label = anchors.label
)

select * from final
