{#- One row per person per stage interval: consecutive days in the same stage collapsed.

    Rebuilt per person (macros/changed_people.sql): on a daily run the people in
    int_stage_changed_people whose whole history changed get every interval again; everyone
    else keeps their closed intervals, and their current one is extended by the days after
    the last build, or closed where those days start another stage. -#}
{{
    config(
        materialized=("incremental" if target.type == "duckdb" else "table"),
        incremental_strategy="delete+insert",
        unique_key=["user_key", "valid_from"],
        on_schema_change="sync_all_columns",
        pre_hook="{{ forget_changed_people('int_stage_changed_people', whole_history=true) }}",
        post_hook=[after_commit("{{ chain_history_built() }}")],
    )
}}
-- depends_on: {{ ref('int_stage_changed_people') }}
{%- set only_new_days = target.type == 'duckdb' and is_incremental()
    and not everyone_changed('int_stage_changed_people') %}
with stages as (
    {%- if only_new_days %}
        {{ new_days_and_people_rows(
            ref('int_person_day_stage'), 'day',
            rebuilt_people(ref('int_stage_changed_people'), whole_history=true)
        ) }}
    {%- else %}
        select * from {{ ref('int_person_day_stage') }}
    {%- endif %}
),

-- consecutive days in one stage share day minus their number within the stage (one sort
-- of the person-day rows, where marking each change and summing the marks takes two)
islands as (
    select
        user_key,
        lifecycle_stage,
        day,
        is_active,
        {{ dbt.dateadd('day', '-row_number() over (partition by user_key, lifecycle_stage order by day)', 'day') }}
            as island
    from stages
),

intervals as (
    select
        user_key,
        lifecycle_stage,
        min(day) as valid_from,
        max(day) as last_day,
        count(*) filter (where is_active) as active_days
    from islands
    group by user_key, lifecycle_stage, island
),

{%- if only_new_days %}

    -- everyone else's current interval (the changed people's rows are gone: pre-hook) joins
    -- the intervals of the new days; the first of those continues it when the stage is the
    -- same
    pieces as (
        select
            user_key,
            lifecycle_stage,
            valid_from,
            last_day,
            active_days,
            cast(null as {{ dbt.type_string() }}) as previous_stage
        from intervals
        union all
        select
            user_key,
            lifecycle_stage,
            valid_from,
            valid_from + cast(days_in_stage - 1 as integer) as last_day,
            active_days,
            previous_stage
        from {{ this }}
        where valid_to is null
    ),

    marked as (
        select
            *,
            coalesce(
                lifecycle_stage <> lag(lifecycle_stage) over (partition by user_key order by valid_from),
                true
            ) as starts_interval
        from pieces
    ),

    numbered as (
        select
            *,
            sum(case when starts_interval then 1 else 0 end) over (
                partition by user_key order by valid_from rows between unbounded preceding and current row
            ) as interval_number
        from marked
    ),

    merged as (
        select
            user_key,
            any_value(lifecycle_stage) as lifecycle_stage,
            min(valid_from) as valid_from,
            max(last_day) as last_day,
            cast(sum(active_days) as bigint) as active_days,
            -- a kept interval knows what came before it
            arg_min(previous_stage, valid_from) as kept_previous_stage
        from numbered
        group by user_key, interval_number
    ),

{%- else %}

    -- a full build: every interval is new
    merged as (
        select
            *,
            cast(null as {{ dbt.type_string() }}) as kept_previous_stage
        from intervals
    ),

{%- endif %}

final as (
    select
        user_key,
        {{ as_of_date() }} as as_of_date,
        lifecycle_stage,
        valid_from,
        case when last_day < {{ as_of_date() }} then last_day + 1 end as valid_to,
        coalesce(
            kept_previous_stage,
            lag(lifecycle_stage) over (partition by user_key order by valid_from)
        ) as previous_stage,
        {{ days_between('valid_from', 'last_day') }} + 1 as days_in_stage,
        active_days
    from merged
)

select * from final
