{#- The people whose rows in int_events and int_person_day_activity this run rebuilds (see
    macros/changed_people.sql), with one reason (erased, events, identity, orders: the
    alphabetically first that applies) and whether every one of their events is rebuilt
    (`all_events`: a changed identity, an erasure, a built row whose staged row is gone) or
    only their new ones, and the first day their changes touch (`changed_from`, null for
    every day; `whole_history` when that is on or before the chain's last as-of date); one
    row with no person when everyone is rebuilt. Run bookkeeping: `built_by` is the dbt
    invocation. -#}
{{ config(pre_hook="{{ chain_snapshot_differences() }}") }}
-- what the comparison reads (dbt sees these while parsing, when the branch below is not
-- rendered)
-- depends_on: {{ ref('stg_events') }}
-- depends_on: {{ ref('int_identity_tuples') }}
-- depends_on: {{ ref('int_orders') }}
-- depends_on: {{ ref('int_erased_users') }}
{%- set everyone = logged_rebuild_reason(chain_rebuild_reason) %}
{%- set built_events = intermediate_relation('int_events') %}

{%- if everyone %}

    {{ everyone_list('everyone: ' ~ everyone, flags=['all_events'], days=true) }}

{%- else %}

    with unseen_events as (
        {{ unseen_staged_events(ref('stg_events')) }}
    ),

    new_events as (
        select
            event_id,
            {{ identity_tuple_key('user_id', 'anonymous_id', 'email_hash', 'phone_hash') }} as tuple_key,
            {{ business_date('occurred_at') }} as event_date
        from unseen_events
        where occurred_at < {{ as_of_end_utc() }}
    ),

    {%- set gone_rows_possible = unseen_builds_removed_rows() %}
    {%- if execute and not gone_rows_possible %}
        {{ log("int_changed_people: no unseen staging build removed rows; built rows' lineage not searched", info=true) }}
    {%- endif %}

    {%- if gone_rows_possible %}

        current_lineage as (
            select distinct
                _file,
                _staging_run
            from {{ ref('stg_events') }}
        ),
    {%- endif %}

    -- rows built from a staged row that is gone (its file withdrawn or restaged; only when
    -- an unseen staging build may have removed rows), and rows built from another copy of
    -- an unseen event (ranked second since, or the same event again; int_events deletes
    -- them even when the unseen copy is after the as-of date); two reads, not one with an
    -- OR, which DuckDB cannot split into two joins (6.6 s against 5.4 s at 100M events)
    left_events as (
        {%- if gone_rows_possible %}
            select
                built.user_key,
                true as all_events,
                cast(null as date) as changed_from
            from {{ built_events }} as built
            left join current_lineage
                on built._file = current_lineage._file and built._staging_run = current_lineage._staging_run
            where current_lineage._file is null
            union all
        {%- endif %}
        -- by the ids' hashes (key_hash; 3.7 -> 0.7 s at the large benchmark): another event
        -- with the same hash only adds its person to the list
        select
            built.user_key,
            false as all_events,
            built.event_date as changed_from
        from {{ built_events }} as built
        where {{ rows_by_key(built_events, '_event_key', 'select unseen_events._event_key from unseen_events') }}
    ),

    tuples as (
        select * from {{ ref('int_identity_tuples') }}
    ),

    -- a combination of identifiers that now belongs to another person, or to nobody (the
    -- differences from the snapshots: the pre-hook)
    tuple_changes as (
        select
            built_user_key,
            user_key
        from {{ chain_state('tuples_differences') }}
        where was_built
    ),

    -- an order new, gone, or changed
    order_changes as (
        select
            user_key,
            built_user_key,
            -- the earlier of its day now and its day then (least skips a missing one)
            least(order_date, built_order_date) as changed_from
        from {{ chain_state('orders_differences') }}
    ),

    -- all_events: every event of the person is rebuilt, not only the new ones (their
    -- events may now belong to someone else, or not be staged any more); changed_from:
    -- the first day the change touches (null: every day), as an activity day depends only
    -- on that day's events and orders
    changes as (
        select
            user_key,
            'events' as reason,
            all_events,
            changed_from
        from left_events
        union all
        select
            tuples.user_key,
            'events' as reason,
            false as all_events,
            new_events.event_date as changed_from
        from new_events
        inner join tuples on new_events.tuple_key = tuples.tuple_key
        union all
        select
            built_user_key as user_key,
            'identity' as reason,
            true as all_events,
            cast(null as date) as changed_from
        from tuple_changes
        union all
        select
            user_key,
            'identity' as reason,
            true as all_events,
            cast(null as date) as changed_from
        from tuple_changes
        union all
        select
            user_key,
            'orders' as reason,
            false as all_events,
            changed_from
        from order_changes
        union all
        select
            built_user_key as user_key,
            'orders' as reason,
            false as all_events,
            changed_from
        from order_changes
        union all
        select
            user_key,
            'erased' as reason,
            true as all_events,
            cast(null as date) as changed_from
        from {{ ref('int_erased_users') }}
    )

    {{ people_list('changes', flags=['all_events'], days=true) }}

{%- endif %}
