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
    Materialised for the lifecycle marts; intervals live in user_lifecycle_history. -#}
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

days as (
    select
        milestones.user_key,
        milestones.signup_date,
        milestones.activation_date,
        milestones.is_activated_in_window,
        calendar.day
    from {{ each_day('milestones', 'milestones.first_seen_date', as_of_date(), 'calendar') }}
),

marked as (
    select
        days.*,
        activity.user_key is not null as has_activity,
        activity.user_key is not null or days.day = days.signup_date as is_active,
        lapses.lapse_date
    from days
    left join activity on days.user_key = activity.user_key and days.day = activity.activity_date
    left join lapses on days.user_key = lapses.user_key and days.day = lapses.lapse_date
),

clocks as (
    select
        *,
        max(case when is_active then day end) over person_so_far as last_active_date,
        max(case when has_activity then day end) over person_so_far as last_activity_date,
        max(lapse_date) over person_so_far as last_lapse_date
    from marked
    window person_so_far as (partition by user_key order by day rows between unbounded preceding and current row)
),

churn as (
    select
        *,
        signup_date is not null
        and day >= signup_date
        and (
            {{ days_between('last_active_date', 'day') }} >= {{ var('lifecycle_churned_after_days') }}
            or (last_lapse_date is not null and last_lapse_date > last_active_date)
        ) as is_churned
    from clocks
),

returns as (
    select
        *,
        is_active and coalesce(lag(is_churned) over (partition by user_key order by day), false)
            as is_reactivation
    from churn
),

return_clock as (
    select
        *,
        max(case when is_reactivation then day end) over (
            partition by user_key order by day rows between unbounded preceding and current row
        ) as last_reactivation_date
    from returns
),

final as (
    select
        user_key,
        day,
        has_activity as is_active,
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
    from return_clock
)

select * from final
