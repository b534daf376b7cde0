{#- One row per person with activity up to the as-of date: their first and last active days,
    active days, orders and revenue (int_user_profile reads them). A daily run (DuckDB) adds
    the new days' activity to the stored totals and sums every day again for the people
    whose whole history changed (macros/activity_summary.sql). -#}
{{
    config(
        materialized=("incremental" if target.type == "duckdb" else "table"),
        incremental_strategy="delete+insert",
        unique_key="user_key",
        on_schema_change="sync_all_columns",
        pre_hook="{{ forget_rebuilt_activity_summaries() }}",
        post_hook="{{ activity_summary_built() }}",
    )
}}
-- the chain must be complete: its state says what this build is on top of
-- depends_on: {{ ref('int_stage_changed_people') }}
-- depends_on: {{ ref('user_lifecycle_history') }}
-- depends_on: {{ ref('int_person_day_activity') }}
{%- set built_as_of = activity_summary_built_as_of(logged=true) %}
{%- if execute and built_as_of %}
    {{ log("int_person_activity_summary: adding the days after " ~ built_as_of
           ~ " (and every day of the people whose whole history changed)", info=true) }}
{%- endif %}
with activity as (
    {{ activity_after_chain(built_as_of) }}
),

summed as (
    select
        user_key,
        min(activity_date) filter (where is_active) as first_active_date,
        max(activity_date) filter (where is_active) as last_active_date,
        count(*) filter (where is_active) as active_days,
        sum(orders) as orders,
        sum(revenue) as revenue
    from activity
    group by user_key
),

final as (
    {%- if built_as_of %}
        -- a kept person's stored totals combine with the new days' (the rebuilt people's
        -- rows are gone: pre-hook); delete+insert replaces their rows
        select
            summed.user_key,
            coalesce(built.first_active_date, summed.first_active_date) as first_active_date,
            coalesce(summed.last_active_date, built.last_active_date) as last_active_date,
            summed.active_days + coalesce(built.active_days, 0) as active_days,
            summed.orders + coalesce(built.orders, 0) as orders,
            summed.revenue + coalesce(built.revenue, 0) as revenue
        from summed
        left join {{ this }} as built on summed.user_key = built.user_key
    {%- else %}
        select * from summed
    {%- endif %}
)

select * from final
