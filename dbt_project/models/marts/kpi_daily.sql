{#- One row per business date: usage (DAU, WAU, MAU, stickiness), lifecycle flows (new,
    activated, churned, reactivated), money (revenue = completed orders; ARPU = revenue / DAU;
    ARPPU = revenue / paying users) and churn rates. Churn rate = customers at the start of a
    period who churned in it / customers at the start (customers: new, activated, active,
    dormant or reactivated); daily, over the trailing 30 days (monthly) and annualised. -#}
{%- set customer_stages = "('new', 'activated', 'active', 'dormant', 'reactivated')" %}
with activity as (
    select * from {{ ref('int_person_day_activity') }}
),

anchors as (
    select * from {{ ref('int_person_stage_anchors') }}
),

daily_stages as (
    select * from {{ ref('lifecycle_daily') }}
),

milestones as (
    select * from {{ ref('int_person_milestones') }}
),

calendar as (
    select distinct date as day from daily_stages
),

-- active today, in the last 7 and in the last 30 days (days_since_activity 0, under 7,
-- under 30 in int_person_day_stage), from the stage anchors: the days of an anchor
-- (day to last_day) share one last activity day, so a person counts from the anchor's
-- first day until 0, 6 or 29 days after that activity or the anchor's last day,
-- whichever comes first. A difference array over the anchors (15M rows at 1M users)
-- instead of a group-by over every person-day (237M rows: 2.2 -> 0.6 s measured alone)
usage_spans as (
    select
        day as first_day,
        least(last_day, last_activity_date) as dau_last,
        least(last_day, last_activity_date + 6) as wau_last,
        least(last_day, last_activity_date + 29) as mau_last
    from anchors
    where last_activity_date is not null and last_activity_date + 29 >= day
),

usage_deltas as (
    select
        day,
        sum(dau) as dau,
        sum(wau) as wau,
        sum(mau) as mau
    from (
        select
            first_day as day,
            case when dau_last >= first_day then 1 else 0 end as dau,
            case when wau_last >= first_day then 1 else 0 end as wau,
            1 as mau
        from usage_spans
        union all
        select
            dau_last + 1 as day,
            -1 as dau,
            0 as wau,
            0 as mau
        from usage_spans
        where dau_last >= first_day
        union all
        select
            wau_last + 1 as day,
            0 as dau,
            -1 as wau,
            0 as mau
        from usage_spans
        where wau_last >= first_day
        union all
        select
            mau_last + 1 as day,
            0 as dau,
            0 as wau,
            -1 as mau
        from usage_spans
    ) as deltas
    group by day
),

-- summed over the calendar: a day without a delta keeps the day before's counts
usage as (
    select
        coalesce(calendar.day, usage_deltas.day) as day,
        cast(sum(coalesce(usage_deltas.dau, 0)) over (
            order by coalesce(calendar.day, usage_deltas.day)
            rows between unbounded preceding and current row
        ) as bigint) as dau,
        cast(sum(coalesce(usage_deltas.wau, 0)) over (
            order by coalesce(calendar.day, usage_deltas.day)
            rows between unbounded preceding and current row
        ) as bigint) as wau,
        cast(sum(coalesce(usage_deltas.mau, 0)) over (
            order by coalesce(calendar.day, usage_deltas.day)
            rows between unbounded preceding and current row
        ) as bigint) as mau
    from calendar
    full outer join usage_deltas on calendar.day = usage_deltas.day
),

money as (
    select
        activity_date as day,
        sum(revenue) as revenue,
        count(*) filter (where completed_orders > 0) as paying_users
    from activity
    group by activity_date
),

signups as (
    select
        signup_date as day,
        count(*) as new_users
    from milestones
    where signup_date is not null
    group by signup_date
),

activations as (
    select
        activation_date as day,
        count(*) as activated_users
    from milestones
    where is_activated_in_window
    group by activation_date
),

flows as (
    select
        date as day,
        sum(entered) filter (where lifecycle_stage = 'churned') as churned_users,
        sum(entered) filter (where lifecycle_stage = 'reactivated') as reactivated_users,
        sum(users) filter (where lifecycle_stage in {{ customer_stages }}) as customers
    from daily_stages
    group by date
),

history as (
    select * from {{ ref('user_lifecycle_history') }}
),

churn_entries as (
    select
        user_key,
        valid_from as churned_on
    from history
    where lifecycle_stage = 'churned'
),

customer_intervals as (
    select
        user_key,
        valid_from,
        coalesce(valid_to, {{ as_of_date() }} + 1) as valid_until
    from history
    where lifecycle_stage in {{ customer_stages }}
),

-- customers on day d0 who entered churned in (d0, d0 + 30], counted on d0 + 30: for each
-- churn entry, the days of the 30 before it that its person spent in a customer stage,
-- from the stage intervals (a range join of the entries with every person-day read 236M
-- rows at 1M users)
churn_windows as (
    select
        churn_entries.user_key,
        greatest(customer_intervals.valid_from, churn_entries.churned_on - 30) as first_day,
        least(customer_intervals.valid_until, churn_entries.churned_on) - 1 as last_day
    from churn_entries
    inner join customer_intervals
        on
            churn_entries.user_key = customer_intervals.user_key
            and churn_entries.churned_on > customer_intervals.valid_from
            and churn_entries.churned_on - 30 < customer_intervals.valid_until
),

-- a person's windows overlap when they churned twice within 30 days: merged first
-- (islands of overlapping or adjacent windows), so each person counts once a day
window_reach as (
    select
        user_key,
        first_day,
        last_day,
        max(last_day) over (
            partition by user_key order by first_day, last_day
            rows between unbounded preceding and 1 preceding
        ) as reach
    from churn_windows
),

window_islands as (
    select
        user_key,
        first_day,
        last_day,
        sum(case when reach is null or first_day > reach + 1 then 1 else 0 end) over (
            partition by user_key order by first_day, last_day
            rows between unbounded preceding and current row
        ) as island
    from window_reach
),

merged_windows as (
    select
        user_key,
        min(first_day) as first_day,
        max(last_day) as last_day
    from window_islands
    group by user_key, island
),

-- counted on d0 + 30: +1 from a window's first day, -1 after its last
churn_deltas as (
    select
        day,
        sum(delta) as delta
    from (
        select
            first_day + 30 as day,
            1 as delta
        from merged_windows
        union all
        select
            last_day + 31 as day,
            -1 as delta
        from merged_windows
    ) as deltas
    group by day
),

monthly_churn as (
    select
        coalesce(calendar.day, churn_deltas.day) as day,
        sum(coalesce(churn_deltas.delta, 0)) over (
            order by coalesce(calendar.day, churn_deltas.day)
            rows between unbounded preceding and current row
        ) as churned_in_30_days
    from calendar
    full outer join churn_deltas on calendar.day = churn_deltas.day
),

joined as (
    select
        calendar.day,
        coalesce(usage.dau, 0) as dau,
        coalesce(usage.wau, 0) as wau,
        coalesce(usage.mau, 0) as mau,
        coalesce(signups.new_users, 0) as new_users,
        coalesce(activations.activated_users, 0) as activated_users,
        coalesce(flows.churned_users, 0) as churned_users,
        coalesce(flows.reactivated_users, 0) as reactivated_users,
        coalesce(money.revenue, 0) as revenue,
        coalesce(money.paying_users, 0) as paying_users,
        coalesce(flows.customers, 0) as customers,
        lag(flows.customers) over (order by calendar.day) as customers_at_start,
        lag(flows.customers, 30) over (order by calendar.day) as customers_30_days_before,
        coalesce(monthly_churn.churned_in_30_days, 0) as churned_in_30_days
    from calendar
    left join usage on calendar.day = usage.day
    left join money on calendar.day = money.day
    left join signups on calendar.day = signups.day
    left join activations on calendar.day = activations.day
    left join flows on calendar.day = flows.day
    left join monthly_churn on calendar.day = monthly_churn.day
),

final as (
    select
        day as date,
        {{ as_of_date() }} as as_of_date,
        dau,
        wau,
        mau,
        case when mau > 0 then dau / mau end as stickiness,
        new_users,
        activated_users,
        churned_users,
        reactivated_users,
        revenue,
        paying_users,
        case when dau > 0 then revenue / dau end as arpu,
        case when paying_users > 0 then revenue / paying_users end as arppu,
        customers,
        customers_at_start,
        case when customers_at_start > 0 then churned_users / customers_at_start end as churn_rate,
        case
            when customers_30_days_before > 0 then churned_in_30_days / customers_30_days_before
        end as churn_rate_monthly,
        case
            when customers_30_days_before > 0
                then 1 - power(1 - churned_in_30_days / customers_30_days_before, 365.0 / 30)
        end as churn_rate_annualised
    from joined
)

select * from final
