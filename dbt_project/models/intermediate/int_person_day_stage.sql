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
    active day (the anchors: a few rows per person) and each anchor's interval of days is
    then expanded with plain arithmetic. A window over the person-day rows themselves would
    sort the largest table of the project three times (200M rows at the large benchmark). -#}
with milestones as (
    select * from {{ ref('int_person_milestones') }}
),

activity as (
    select
        user_key,
        activity_date
    from {{ ref('int_person_day_activity') }}
    where is_active
),

lapses as (
    select
        user_key,
        lapse_date
    from {{ ref('int_subscription_lapses') }}
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
),

days as (
    select
        return_clock.user_key,
        calendar.day,
        return_clock.day = calendar.day and return_clock.has_activity as is_active,
        return_clock.signup_date,
        return_clock.activation_date,
        return_clock.is_activated_in_window,
        return_clock.last_active_date,
        return_clock.last_activity_date,
        return_clock.last_reactivation_date,
        return_clock.lapse_date
    from {{ each_day('return_clock', 'return_clock.day', 'return_clock.last_day', 'calendar') }}
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
