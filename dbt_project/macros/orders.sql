{#- Daily builds of int_orders (DuckDB): write again only the orders the day touched, instead
    of every order (5.4M rows, 3.9 s a large day, half of it writing rows that had not
    changed). An order's row depends only on its newest valid staged version, whether it was
    placed by the as-of date, the person of its identifiers (int_identity_tuples) and
    whether that person is erased. So a daily build deletes and writes again the orders of
    the staging builds it has not seen (a build stamps every stored row of an order id it
    stages: new orders, new versions, re-ranked copies), the orders the moved as-of date
    lets in, and the orders of the combinations of identifiers int_identity_tuples wrote or
    deleted in this invocation (found by the 64-bit tuple hash, as int_events finds a
    rebuilt person's events); and it deletes the orders of the people erased since.
    Every order is written again on a first build, a full refresh, a changed model or
    business time zone, an as-of date that went back, no log of the orders' staging builds,
    an unseen staging build that may have removed rows, combinations of identifiers that
    changed in a way this build cannot list (written whole, or by a build it did not see),
    or a person no longer erased. -#}

{% macro orders_state(part) -%}
    {{ intermediate_relation('int_orders_' ~ part) }}
{%- endmacro %}

{#- The orders a daily build writes again or deletes: a work table, outside the model
    layers (only daily builds have one). -#}
{% macro touched_orders_table() -%}
    orders_work.touched
{%- endmacro %}

{% macro orders_fingerprint() -%}
    {{ return(fingerprint([var('business_timezone')], ['int_orders'])) }}
{%- endmacro %}

{#- The orders staging builds int_orders has not seen (their runs), and whether any of them
    may have removed rows. -#}
{% macro unseen_order_builds() -%}
    {%- set found = run_query(
        "select _staging_run, coalesce(rows_left, true) from " ~ staging_build_log('orders')
        ~ " where _staging_run not in (select seen._staging_run from " ~ orders_state('runs')
        ~ " as seen) order by 1") -%}
    {{ return({'runs': found.columns[0].values() | list,
               'removed': true in (found.columns[1].values() | list)}) }}
{%- endmacro %}

{#- How the combinations of identifiers changed since int_orders' last build: 'none' (the
    same build of int_identity_tuples), 'listed' (this invocation wrote only the changed
    ones, on top of the build int_orders saw: identity_tuple_changes()) or '' (unknown). -#}
{% macro tuple_changes_since_orders(built) -%}
    {%- set tuples = state_row('int_identity_tuples_state') -%}
    {%- if tuples is none or tuples.get('built_by') is none -%}
        {{ return('') }}
    {%- elif tuples.get('built_by') == built.get('tuples_built_by') -%}
        {{ return('none') }}
    {%- elif tuples.get('built_by') == invocation_id and tuples.get('wrote_everything') == false
        and tuples.get('previous_built_by') == built.get('tuples_built_by') -%}
        {{ return('listed') }}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}

{#- Why every order is written again ('' when only the touched ones). -#}
{% macro orders_rebuild_reason() -%}
    {%- set first = first_build_reason([
        'intermediate.int_orders', 'intermediate.int_orders_state',
        'intermediate.int_orders_runs', 'intermediate.int_orders_erased']) -%}
    {%- if first -%}
        {{ return(first) }}
    {%- endif -%}
    {%- set built = state_row('int_orders_state') -%}
    {%- if built is none or built.get('fingerprint') != orders_fingerprint() -%}
        {{ return('int_orders or the business time zone changed') }}
    {%- endif -%}
    {%- if built['as_of_date'] | string > var('as_of_date') -%}
        {{ return('the as-of date went back') }}
    {%- endif -%}
    {%- if staging_build_log('orders') is none -%}
        {{ return('no log of the orders staging builds') }}
    {%- endif -%}
    {%- if unseen_order_builds()['removed'] -%}
        {{ return('an orders staging build may have removed rows') }}
    {%- endif -%}
    {%- if not tuple_changes_since_orders(built) -%}
        {{ return('the combinations of identifiers changed in a way not listed') }}
    {%- endif -%}
    {%- set unerased = run_query(
        "select count(*) from " ~ orders_state('erased') ~ " where user_key not in "
        ~ "(select erased.user_key from " ~ ref('int_erased_users') ~ " as erased)"
    ).columns[0].values()[0] -%}
    {%- if unerased > 0 -%}
        {{ return('a person is no longer erased') }}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}

{#- On a daily build, the select of the order ids to write again; none when every order is
    written. The model asks with `logged` (the reason is logged once). -#}
{% macro touched_orders(logged=false) -%}
    {%- if target.type != 'duckdb' or not execute or not is_incremental() -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set reason = logged_rebuild_reason(orders_rebuild_reason) if logged
        else orders_rebuild_reason() -%}
    {%- if reason -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set built = state_row('int_orders_state') -%}
    {%- set runs = unseen_order_builds()['runs'] -%}
    {%- set staged = ref('stg_orders__all') -%}
    {%- set built_end = local_to_utc("cast(date '" ~ built['as_of_date'] ~ "' + interval 1 day as timestamp)",
                                     var('business_timezone')) -%}
    {%- set ids -%}
        select unseen.order_id from {{ staged }} as unseen
        where {{ runs_condition(runs) }}
        union
        select reached.order_id from {{ ref('stg_orders') }} as reached
        where reached.ordered_at >= {{ built_end }} and reached.ordered_at < {{ as_of_end_utc() }}
        {%- if tuple_changes_since_orders(built) == 'listed' %}
        union
        select relabelled.order_id from {{ ref('stg_orders') }} as relabelled
        where {{ identity_tuple_hash('relabelled.user_id', 'relabelled.anonymous_id',
                                     'relabelled.email_hash', 'relabelled.phone_hash') }} in (
            select {{ identity_tuple_hash(
                "split_part(changed.tuple_key, chr(31), 1)", "split_part(changed.tuple_key, chr(31), 2)",
                "split_part(changed.tuple_key, chr(31), 3)", "split_part(changed.tuple_key, chr(31), 4)"
            ) }}
            from {{ identity_tuple_changes() }} as changed
        )
        {%- endif %}
    {%- endset -%}
    {{ return(ids) }}
{%- endmacro %}

{#- The orders a daily build of int_orders wrote again or deleted, in this invocation (the
    chain compares only those with its snapshot, and the key test reads only those); none
    otherwise. -#}
{% macro orders_written() -%}
    {%- set built = state_row('int_orders_state') -%}
    {%- if built is not none and built.get('built_by') == invocation_id
        and built.get('wrote_everything') == false -%}
        {{ return(touched_orders_table()) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}

{#- Pre-hook: on a daily build, the table of the orders about to be written again and of the
    people erased since (touched_orders_table()), then their delete; otherwise delete every
    order. -#}
{% macro forget_touched_orders() -%}
    {%- if target.type == 'duckdb' and is_incremental() -%}
        {%- set ids = touched_orders() -%}
        {%- if ids is none -%}
            drop table if exists {{ touched_orders_table() }};
            delete from {{ this }}
        {%- else -%}
            {% do run_query('create schema if not exists orders_work') %}
            {% do replace_work_table(touched_orders_table(),
                'select touched.order_id from (' ~ ids ~ ') as touched union '
                ~ 'select erased_orders.order_id from ' ~ this ~ ' as erased_orders '
                ~ 'where erased_orders.user_key in (select erased.user_key from '
                ~ ref('int_erased_users') ~ ' as erased)') %}
            {%- set runs = unseen_order_builds()['runs'] | length -%}
            {%- set touched = run_query('select count(*) from ' ~ touched_orders_table()).columns[0].values()[0] -%}
            {{ log('int_orders: writing again ' ~ touched ~ ' orders (of ' ~ runs
                   ~ ' unseen staging builds, the days after the last build, '
                   ~ ('the changed combinations of identifiers, '
                      if tuple_changes_since_orders(state_row('int_orders_state')) == 'listed' else '')
                   ~ 'the people erased since)', info=true) }}
            delete from {{ this }}
            where order_id in (select touched.order_id from {{ touched_orders_table() }} as touched)
        {%- endif -%}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- Post-hook: what the next build compares with. -#}
{% macro orders_built() -%}
    {%- if target.type == 'duckdb' -%}
        {%- set log = staging_build_log('orders') -%}
        create or replace table {{ orders_state('runs') }} as
        select _staging_run
        from {% if log is none %}(select cast(null as varchar) as _staging_run where false) as none_logged{% else %}{{ log }}{% endif %};
        create or replace table {{ orders_state('erased') }} as
        select user_key from {{ ref('int_erased_users') }};
        {%- set previous = stored_built_by('int_orders_state') %}
        create or replace table {{ orders_state('state') }} as
        select
            '{{ orders_fingerprint() }}' as fingerprint,
            {{ as_of_date() }} as as_of_date,
            (select tuples.built_by from {{ identity_tuples_state() }} as tuples) as tuples_built_by,
            '{{ invocation_id }}' as built_by,
            {{ "'" ~ previous ~ "'" if previous else 'null' }} as previous_built_by,
            {{ 'false' if is_incremental() and touched_orders() is not none else 'true' }} as wrote_everything
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
