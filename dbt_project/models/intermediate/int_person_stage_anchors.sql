{#- One row per person per anchor: a day a lifecycle clock can restart (first seen, signup,
    an active day), with every clock as of that day and the last day before the next anchor
    (the as-of date for the last one). int_person_day_stage expands each anchor's days; the
    state machine is documented there.

    Rebuilt per person (macros/changed_people.sql): the people in int_stage_changed_people on
    a daily run; everyone else's last anchor is extended to the new as-of date by the
    pre-hook (and picks up a subscription lapse in the days it gained). -#}
{{
    config(
        materialized=("incremental" if target.type == "duckdb" else "table"),
        incremental_strategy="append",
        on_schema_change="sync_all_columns",
        pre_hook=[
            "{{ forget_changed_people('int_stage_changed_people') }}",
            "{{ extend_last_anchors() }}",
        ],
    )
}}
-- depends_on: {{ ref('int_stage_changed_people') }}
with milestones as (
    select * from {{ ref('int_person_milestones') }}
    where true {{ only_changed_people('user_key', 'int_stage_changed_people') }}
),

activity as (
    select
        user_key,
        activity_date
    from {{ ref('int_person_day_activity') }}
    where is_active {{ only_changed_people('user_key', 'int_stage_changed_people') }}
),

lapses as (
    select
        user_key,
        lapse_date
    from {{ ref('int_subscription_lapses') }}
    where true {{ only_changed_people('user_key', 'int_stage_changed_people') }}
),

-- the days a clock can restart: first seen (the start of the first interval), activity
-- and signup (both count as active)
anchor_candidates as (
    select
        milestones.user_key,
        activity.activity_date as day,
        true as has_activity
    from milestones
    inner join activity
        on
            milestones.user_key = activity.user_key
            and milestones.first_seen_date <= activity.activity_date
            and activity.activity_date <= {{ as_of_date() }}
    union all
    select
        user_key,
        signup_date as day,
        false as has_activity
    from milestones
    where signup_date <= {{ as_of_date() }}
    union all
    select
        user_key,
        first_seen_date as day,
        false as has_activity
    from milestones
),

anchors as (
    select
        candidates.user_key,
        candidates.day,
        bool_or(candidates.has_activity) as has_activity,
        bool_or(candidates.has_activity) or candidates.day = milestones.signup_date as is_active,
        milestones.signup_date,
        milestones.activation_date,
        milestones.is_activated_in_window
    from anchor_candidates as candidates
    inner join milestones on candidates.user_key = milestones.user_key
    group by
        candidates.user_key,
        candidates.day,
        milestones.signup_date,
        milestones.activation_date,
        milestones.is_activated_in_window
),

intervals as (
    select
        user_key,
        day,
        has_activity,
        is_active,
        signup_date,
        activation_date,
        is_activated_in_window,
        case when is_active then day end as last_active_date,
        coalesce(
            lead(day) over (partition by user_key order by day) - 1, {{ as_of_date() }}
        ) as last_day,
        max(case when has_activity then day end) over (
            partition by user_key order by day rows between unbounded preceding and current row
        ) as last_activity_date
    from anchors
),

-- a subscription lapse after the interval's active day (and within the interval) churns the
-- person from that day on
interval_lapses as (
    select
        intervals.user_key,
        intervals.day,
        min(lapses.lapse_date) as lapse_date
    from intervals
    inner join lapses
        on
            intervals.user_key = lapses.user_key
            and intervals.last_active_date < lapses.lapse_date
            and intervals.last_day >= lapses.lapse_date
    group by intervals.user_key, intervals.day
),

with_lapses as (
    select
        intervals.*,
        interval_lapses.lapse_date
    from intervals
    left join interval_lapses
        on intervals.user_key = interval_lapses.user_key and intervals.day = interval_lapses.day
),

-- an active day after a churned day is a return: was the previous interval's last day churned?
returns as (
    select
        *,
        is_active and coalesce(
            signup_date is not null
            and day - 1 >= signup_date
            and (
                {{ days_between(
                    'lag(last_active_date) over (partition by user_key order by day)', 'day - 1'
                ) }} >= {{ var('lifecycle_churned_after_days') }}
                or lag(lapse_date) over (partition by user_key order by day) <= day - 1
            ),
            false
        ) as is_reactivation
    from with_lapses
),

return_clock as (
    select
        *,
        max(case when is_reactivation then day end) over (
            partition by user_key order by day rows between unbounded preceding and current row
        ) as last_reactivation_date
    from returns
)

select
    user_key,
    day,
    last_day,
    has_activity,
    signup_date,
    activation_date,
    is_activated_in_window,
    last_active_date,
    last_activity_date,
    last_reactivation_date,
    lapse_date
from return_clock
