{#- One row per identifier with the person (user_key) it belongs to.

    Persons are the connected components of the identifier graph. A person's key is a keyed
    hash of the component's earliest-seen identifier, so it stays the same as data grows:
    new identifiers joining a person do not change it; only a merge of two persons does (the
    merged person keeps the older key). A daily build relabels only the components the new
    data touched: it deletes their rows and inserts them relabelled, and everyone else's rows
    stay where they are (macros/identity.sql). -#}
{{
    config(
        tags=['identity'],
        materialized=("incremental" if target.type == "duckdb" else "table"),
        incremental_strategy="append",
        on_schema_change="sync_all_columns",
        pre_hook="{{ forget_relabelled_identifiers() }}",
        post_hook="{{ identity_map_built() }}",
    )
}}
{%- set scope = identity_relabel_scope() %}
with components as (
    {% if scope -%}
        {{ connected_components(
            "select node_id from " ~ scope,
            "select src, dst from " ~ ref('int_identity_edges')
            ~ " where src in (select relabel.node_id from " ~ scope ~ " as relabel)"
        ) }}
    {%- else -%}
        {{ connected_components(
            "select node_id from " ~ ref('int_identity_nodes'),
            "select src, dst from " ~ ref('int_identity_edges')
        ) }}
    {%- endif %}
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

relabelled as (
    select
        labelled.node_id,
        labelled.node_type,
        labelled.is_shared,
        labelled.first_seen_at,
        'p_' || left({{ pii_hash('person', 'anchors.anchor_node') }}, 24) as user_key
    from labelled
    inner join anchors on labelled.label = anchors.label
),

final as (
    select * from relabelled
)

select * from final
