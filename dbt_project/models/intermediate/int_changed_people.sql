{#- The people whose rows in int_events and int_person_day_activity this run rebuilds (see
    macros/changed_people.sql), with the first reason found; one row with no person when
    everyone is rebuilt. Run bookkeeping: `built_by` is the dbt invocation. -#}
-- what the comparison reads (dbt sees these while parsing, when the branch below is not
-- rendered)
-- depends_on: {{ ref('stg_events') }}
-- depends_on: {{ ref('int_identity_tuples') }}
-- depends_on: {{ ref('int_orders') }}
-- depends_on: {{ ref('int_erased_users') }}
{%- set everyone = chain_rebuild_reason() if target.type == 'duckdb' else 'not incremental here' %}
{%- if execute and everyone %}
    {{ log("int_changed_people: everyone (" ~ everyone ~ ")", info=true) }}
{%- endif %}

{%- if everyone %}

    select
        cast(null as varchar) as user_key,
        'everyone: {{ everyone }}' as reason,
        '{{ invocation_id }}' as built_by

{%- else %}

    with current_events as (
        select
            event_id,
            _file,
            _row,
            _staging_run,
            user_id,
            anonymous_id,
            email_hash,
            phone_hash
        from {{ ref('stg_events') }}
        where occurred_at < {{ as_of_end_utc() }}
    ),

    built_events as (
        select
            event_id,
            _file,
            _row,
            _staging_run,
            user_key
        from {{ this.database }}.{{ this.schema }}.int_events
    ),

    -- new, restaged, re-ranked (another copy is first now) and withdrawn events
    event_changes as (
        select
            -- the identifiers of a current row (null for a row that left), as a tuple key
            case when current_events.event_id is not null then {{ identity_tuple_key(
                'current_events.user_id', 'current_events.anonymous_id',
                'current_events.email_hash', 'current_events.phone_hash') }} end as tuple_key,
            built_events.user_key as built_user_key
        from current_events
        full outer join built_events on current_events.event_id = built_events.event_id
        where
            current_events.event_id is null
            or built_events.event_id is null
            or current_events._file is distinct from built_events._file
            or current_events._row is distinct from built_events._row
            or current_events._staging_run is distinct from built_events._staging_run
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
            built_user_key as user_key,
            'events' as reason
        from event_changes
        union all
        select
            tuples.user_key,
            'events' as reason
        from event_changes
        inner join tuples on event_changes.tuple_key = tuples.tuple_key
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

    select
        user_key,
        min(reason) as reason,
        '{{ invocation_id }}' as built_by
    from changes
    where user_key is not null
    group by user_key

{%- endif %}
