{#- One row per event that occurred on or before the as-of date, with its person and business
    date; erased people are left out. A daily run builds the events the chain has not seen
    and every event of the people of int_changed_people whose identity changed, who were
    erased or lost a staged row (macros/changed_people.sql). -#}
{{
    config(
        materialized=("incremental" if target.type == "duckdb" else "table"),
        incremental_strategy="append",
        on_schema_change="sync_all_columns",
        pre_hook="{{ forget_changed_events() }}",
        post_hook="{{ chain_events_built() }}",
    )
}}
-- depends_on: {{ ref('int_changed_people') }}
with events as (
    {{ changed_staged_events() }}
),

final as (
    select
        tuples.user_key,
        events.event_id,
        events._event_key,
        events.event_type,
        events.occurred_at,
        {{ business_date('events.occurred_at') }} as event_date,
        events.channel,
        events.user_id,
        events.amount,
        events.currency,
        events.order_id,
        events.properties,
        events.is_known_event_type,
        events.event_type in ({{ sql_list(var('activity_event_types')) }}) as is_activity,
        -- staging lineage: what int_changed_people compares on the next run
        events._file,
        events._staging_run
    from events
    {{ join_person('events') }}
    {{ only_changed_people('tuples.user_key') }}
)

select * from final
