{#- Two rows: people who churned in the last `lifecycle_churn_reasons_window_days` and people
    retained (customers not churned on the as-of date), with their average behaviour in the
    `lifecycle_behaviour_window_days` up to their last active day (churned: the weeks before
    they went quiet) or up to the as-of date (retained): active days, sessions, orders, spend,
    support tickets and NPS. -#}
{%- set window = var('lifecycle_behaviour_window_days') %}
with churners as (
    select
        user_key,
        last_active_date + 1 as reference_date,
        'churned' as user_group
    from {{ ref('int_recent_churners') }}
),

retained as (
    select
        user_key,
        {{ as_of_date() }} + 1 as reference_date,
        'retained' as user_group
    from {{ ref('int_person_day_stage') }}
    where day = {{ as_of_date() }} and lifecycle_stage in ('new', 'activated', 'active', 'dormant', 'reactivated')
),

people as (
    select * from churners
    union all
    select * from retained
),

windowed as (
    select
        people.user_group,
        people.user_key,
        count(*) filter (where activity.is_active) as active_days,
        coalesce(sum(activity.sessions), 0) as sessions,
        coalesce(sum(activity.orders), 0) as orders,
        coalesce(sum(activity.revenue), 0) as spend,
        coalesce(sum(activity.support_tickets), 0) as support_tickets,
        sum(activity.nps_total) as nps_total,
        sum(activity.nps_responses) as nps_responses
    from people
    left join {{ ref('int_person_day_activity') }} as activity
        on
            people.user_key = activity.user_key
            and activity.activity_date >= people.reference_date - {{ window }}
            and people.reference_date > activity.activity_date
    group by people.user_group, people.user_key
),

final as (
    select
        {{ as_of_date() }} as as_of_date,
        user_group,
        {{ window }} as window_days,
        count(*) as users,
        avg(active_days) as avg_active_days,
        avg(sessions) as avg_sessions,
        avg(orders) as avg_orders,
        avg(spend) as avg_spend,
        avg(support_tickets) as avg_support_tickets,
        avg(case when support_tickets > 0 then 1.0 else 0.0 end) as share_with_support_ticket,
        sum(nps_total) / nullif(sum(nps_responses), 0) as avg_nps
    from windowed
    group by user_group
)

select * from final
