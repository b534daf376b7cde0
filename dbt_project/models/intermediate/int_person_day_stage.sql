{#- One row per person per day from first seen to the as-of date, with the lifecycle stage
    that day. The state machine (thresholds are vars):

    prospect     before signup (or never signed up: known only anonymously)
    churned      no activity for `churned_after_days`, or a subscription lapsed (paid period
                 + grace) with no activity since
    dormant      no activity for `dormant_after_days` (and not churned)
    reactivated  the first `reactivated_period_days` after returning from churned
    new          signed up, not yet activated
    activated    the first `activated_period_days` after activating within the window
    active       otherwise

    The signup day counts as activity. Each person is in exactly one stage each day.
    Materialised for the lifecycle marts; intervals live in user_lifecycle_history.

    How: between two active days nothing but the calendar moves, so every clock (last active
    day, last activity, a lapse since, the last return from churned) is worked out once per
    active day (int_person_stage_anchors: a few rows per person) and each anchor's interval
    of days is then expanded with plain arithmetic. A window over the person-day rows
    themselves would sort the largest table of the project three times (200M rows at the
    large benchmark).

    Rebuilt per person (macros/changed_people.sql): on a daily run the people in
    int_stage_changed_people whose whole history changed get every day again; everyone else
    keeps their rows and gains the days after the last build's as-of date, from the anchors
    that reach them (the last one kept, or the rebuilt anchors of a person whose changes all
    lie in those days). -#}
{{
    config(
        materialized=("incremental" if target.type == "duckdb" else "table"),
        incremental_strategy="append",
        on_schema_change="sync_all_columns",
        pre_hook="{{ forget_changed_people('int_stage_changed_people', whole_history=true) }}",
        post_hook="{{ chain_stage_built() }}",
    )
}}
-- the people rebuilt, and the milestones the post-hook snapshots
-- depends_on: {{ ref('int_stage_changed_people') }}
-- depends_on: {{ ref('int_person_milestones') }}
with anchors as (
    select * from {{ ref('int_person_stage_anchors') }}
),

-- each anchor's days from `first_day`: all of them for the people rebuilt; for everyone
-- else only the days after the last build
spans as (
    select
        *,
        day as first_day
    from anchors
    where true {{ only_changed_people('user_key', 'int_stage_changed_people', whole_history=true) }}
    {%- if target.type == 'duckdb' and is_incremental() and not everyone_changed('int_stage_changed_people') %}
        union all
        select
            *,
            greatest(day, {{ chain_built_as_of() }} + 1) as first_day
        from anchors
        where
            last_day > {{ chain_built_as_of() }}
            and user_key not in ({{ rebuilt_people(ref('int_stage_changed_people'), whole_history=true) }})
    {%- endif %}
),

days as (
    select
        spans.user_key,
        calendar.day,
        spans.day = calendar.day and spans.has_activity as is_active,
        spans.signup_date,
        spans.activation_date,
        spans.is_activated_in_window,
        spans.last_active_date,
        spans.last_activity_date,
        spans.last_reactivation_date,
        spans.lapse_date
    from {{ each_day('spans', 'spans.first_day', 'spans.last_day', 'calendar') }}
),

churn as (
    select
        *,
        signup_date is not null
        and day >= signup_date
        and (
            {{ days_between('last_active_date', 'day') }} >= {{ var('lifecycle_churned_after_days') }}
            or lapse_date <= day
        ) as is_churned
    from days
),

final as (
    select
        user_key,
        day,
        is_active,
        {{ days_between('last_activity_date', 'day') }} as days_since_activity,
        case
            when signup_date is null or day < signup_date then 'prospect'
            when is_churned then 'churned'
            when {{ days_between('last_active_date', 'day') }} >= {{ var('lifecycle_dormant_after_days') }}
                then 'dormant'
            when {{ days_between('last_reactivation_date', 'day') }} < {{ var('lifecycle_reactivated_period_days') }}
                then 'reactivated'
            when activation_date is null or day < activation_date then 'new'
            when
                is_activated_in_window
                and {{ days_between('activation_date', 'day') }} < {{ var('lifecycle_activated_period_days') }}
                then 'activated'
            else 'active'
        end as lifecycle_stage
    from churn
)

select * from final
