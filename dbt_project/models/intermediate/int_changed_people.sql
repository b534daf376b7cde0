{#- The people whose rows in int_events and int_person_day_activity this run rebuilds (see
    macros/changed_people.sql), with one reason (erased, events, identity, orders: the
    alphabetically first that applies); one row with no person when everyone is rebuilt.
    Run bookkeeping: `built_by` is the dbt invocation. -#}
-- what the comparison reads (dbt sees these while parsing, when the branch below is not
-- rendered)
-- depends_on: {{ ref('stg_events') }}
-- depends_on: {{ ref('int_identity_tuples') }}
-- depends_on: {{ ref('int_orders') }}
-- depends_on: {{ ref('int_erased_users') }}
{%- set everyone = logged_rebuild_reason(chain_rebuild_reason) %}

{%- if everyone %}

    {{ everyone_list('everyone: ' ~ everyone) }}

{%- else %}

    with built_state as (
        select * from {{ chain_state('state') }}
    ),

    -- rows the chain has not seen: staged (or re-ranked: the post-hook stamps those) by a
    -- staging build after its last build, or inside the days the as-of date moved over
    new_events as (
        select
            event_id,
            {{ identity_tuple_key('user_id', 'anonymous_id', 'email_hash', 'phone_hash') }} as tuple_key
        from {{ ref('stg_events') }}
        where
            occurred_at < {{ as_of_end_utc() }}
            and (
                _staging_run not in (select runs._staging_run from {{ chain_state('runs') }} as runs)
                or occurred_at >= (
                    select {{ local_to_utc(
                        "cast(built_state.as_of_date + interval 1 day as timestamp)",
                        var('business_timezone')) }}
                    from built_state
                )
            )
    ),

    current_lineage as (
        select distinct
            _file,
            _staging_run
        from {{ ref('stg_events') }}
    ),

    -- rows built from a staged row that is gone (its file withdrawn or restaged), and rows
    -- built from another copy of a new row (ranked second since, or the same event again);
    -- two reads, not one with an OR, which DuckDB cannot split into two joins (6.6 s
    -- against 5.4 s at 100M events)
    left_events as (
        select built.user_key
        from {{ this.database }}.{{ this.schema }}.int_events as built
        left join current_lineage
            on built._file = current_lineage._file and built._staging_run = current_lineage._staging_run
        where current_lineage._file is null
        union all
        select built.user_key
        from {{ this.database }}.{{ this.schema }}.int_events as built
        where built.event_id in (select new_events.event_id from new_events)
    ),

    tuples as (
        select * from {{ ref('int_identity_tuples') }}
    ),

    built_tuples as (
        select * from {{ chain_state('tuples') }}
    ),

    -- a combination of identifiers that now belongs to another person, or to nobody
    tuple_changes as (
        select
            built_tuples.user_key as built_user_key,
            tuples.user_key
        from built_tuples
        left join tuples on built_tuples.tuple_key = tuples.tuple_key
        where tuples.user_key is distinct from built_tuples.user_key
    ),

    orders as (
        select * from {{ ref('int_orders') }}
    ),

    built_orders as (
        select * from {{ chain_state('orders') }}
    ),

    order_changes as (
        select
            orders.user_key,
            built_orders.user_key as built_user_key
        from orders
        full outer join built_orders on orders.order_id = built_orders.order_id
        where
            orders.order_id is null
            or built_orders.order_id is null
            or orders.user_key is distinct from built_orders.user_key
            or orders.order_date is distinct from built_orders.order_date
            or orders.status is distinct from built_orders.status
            or orders.channel is distinct from built_orders.channel
            or orders.revenue is distinct from built_orders.revenue
    ),

    changes as (
        select
            user_key,
            'events' as reason
        from left_events
        union all
        select
            tuples.user_key,
            'events' as reason
        from new_events
        inner join tuples on new_events.tuple_key = tuples.tuple_key
        union all
        select
            built_user_key as user_key,
            'identity' as reason
        from tuple_changes
        union all
        select
            user_key,
            'identity' as reason
        from tuple_changes
        union all
        select
            user_key,
            'orders' as reason
        from order_changes
        union all
        select
            built_user_key as user_key,
            'orders' as reason
        from order_changes
        union all
        select
            user_key,
            'erased' as reason
        from {{ ref('int_erased_users') }}
    )

    {{ people_list('changes') }}

{%- endif %}
