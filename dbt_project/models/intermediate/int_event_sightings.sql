{#- One row per distinct combination of identifiers on the staged events up to the as-of
    date: its first time and how many events carry it. int_identifier_sightings adds the
    other sources. A daily run adds the events it has not seen (macros/event_sightings.sql). -#}
{{
    config(
        materialized=("incremental" if target.type == "duckdb" else "table"),
        incremental_strategy="delete+insert",
        unique_key="tuple_key",
        on_schema_change="sync_all_columns",
        pre_hook="{{ forget_event_sightings() }}",
        post_hook="{{ event_sightings_built() }}",
        tags=['identity'],
    )
}}
-- the staged rows the rebuild check reads
-- depends_on: {{ ref('stg_events__all') }}
{%- set everyone = event_sightings_rebuild_reason() if target.type == 'duckdb' else 'not incremental here' %}
{%- if execute %}
    {{ log("int_event_sightings: " ~ ("from every staged event (" ~ everyone ~ ")" if everyone
           else "adding the events not counted yet"), info=true) }}
{%- endif %}
with events as (
    {%- if everyone %}
        select * from {{ ref('stg_events') }}
        where occurred_at < {{ as_of_end_utc() }}
    {%- else %}
        {{ unseen_sighted_events(ref('stg_events')) }}
    {%- endif %}
),

-- grouped by the identifiers themselves: the key is built once per combination, not once
-- per event
sighted as (
    select
        user_id,
        anonymous_id,
        email_hash,
        phone_hash,
        min(occurred_at) as first_seen_at,
        count(*) as sightings
    from events
    group by user_id, anonymous_id, email_hash, phone_hash
),

keyed as (
    select
        {{ identity_tuple_key('user_id', 'anonymous_id', 'email_hash', 'phone_hash') }} as tuple_key,
        *
    from sighted
),

final as (
    {%- if everyone %}
        select * from keyed
    {%- else %}
        -- merged with what was counted before (delete+insert replaces those rows)
        select
            keyed.tuple_key,
            keyed.user_id,
            keyed.anonymous_id,
            keyed.email_hash,
            keyed.phone_hash,
            least(keyed.first_seen_at, built.first_seen_at) as first_seen_at,
            keyed.sightings + coalesce(built.sightings, 0) as sightings
        from keyed
        left join {{ this }} as built on keyed.tuple_key = built.tuple_key
    {%- endif %}
)

select * from final
