{#- One row per order (latest version) placed on or before the as-of date, with its person and
    business date; erased people are left out. Revenue counts completed orders only. Only
    the columns the models read (the account id, currency and store stay in stg_orders). A
    daily run (DuckDB) writes again only the orders the day touched (macros/orders.sql). -#}
{{
    config(
        materialized=("incremental" if target.type == "duckdb" else "table"),
        incremental_strategy="append",
        on_schema_change="sync_all_columns",
        pre_hook="{{ forget_touched_orders() }}",
        post_hook="{{ orders_built() }}",
    )
}}
-- the staging builds and erasures the daily path reads
-- depends_on: {{ ref('stg_orders__all') }}
-- depends_on: {{ ref('int_erased_users') }}
{%- set touched = touched_orders(logged=true) %}
with orders as (
    select * from {{ ref('stg_orders') }}
    where
        ordered_at < {{ as_of_end_utc() }}
        -- a daily build: the orders its pre-hook listed (forget_touched_orders)
        and {{ 'true' if touched is none else 'order_id in (select touched.order_id from '
                                              ~ touched_orders_table() ~ ' as touched)' }}
),

final as (
    select
        tuples.user_key,
        orders.order_id,
        orders.ordered_at,
        {{ business_date('orders.ordered_at') }} as order_date,
        orders.amount,
        orders.status,
        orders.channel,
        case when orders.status = 'completed' then orders.amount else 0 end as revenue
    from orders
    {{ join_person('orders') }}
)

select * from final
