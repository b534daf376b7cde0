{#- One row per combination of identifiers seen on a row, with its person. A row's person is
    the one of its first identifier that is not shared (account id, email, phone, device);
    a row known only by shared identifiers belongs to the shared identifier's own person.

    A daily build (DuckDB) writes only the combinations that are new or hold an identifier
    the identity map relabelled, and deletes those and the combinations no longer seen
    (macros/identity.sql); everyone else's rows stay. -#}
{{
    config(
        tags=['identity'],
        materialized=("incremental" if target.type == "duckdb" else "table"),
        incremental_strategy="append",
        on_schema_change="sync_all_columns",
        pre_hook="{{ forget_changed_tuples() }}",
        post_hook="{{ identity_tuples_built() }}",
    )
}}
with sightings as (
    {%- if identity_tuples_daily(logged=true) %}
        -- the combinations the pre-hook found new or relabelled
        select * from {{ identity_tuple_changes() }}
        where is_current
    {%- else %}
        select * from {{ ref('int_identifier_sightings') }}
    {%- endif %}
),

identity_map as (
    select * from {{ ref('int_identity_map') }}
),

final as (
    select
        {{ identity_tuple_key(
            "substr(sightings.user_node, 3)", "substr(sightings.anonymous_node, 3)",
            "substr(sightings.email_node, 3)", "substr(sightings.phone_node, 3)") }} as tuple_key,
        coalesce(
            case when not u.is_shared then u.user_key end,
            case when not e.is_shared then e.user_key end,
            case when not p.is_shared then p.user_key end,
            case when not a.is_shared then a.user_key end,
            u.user_key, e.user_key, p.user_key, a.user_key
        ) as user_key
    from sightings
    -- each side joins only the identifiers of its kind (a quarter of the map each): 2.5 ->
    -- 1.2 s at a million people
    left join identity_map as u on sightings.user_node = u.node_id and u.node_type = 'user_id'
    left join identity_map as a
        on sightings.anonymous_node = a.node_id and a.node_type = 'anonymous_id'
    left join identity_map as e on sightings.email_node = e.node_id and e.node_type = 'email'
    left join identity_map as p on sightings.phone_node = p.node_id and p.node_type = 'phone'
)

-- a sighting is one combination of identifiers, so its tuple_key is unique (tested) without
-- a distinct
select * from final
