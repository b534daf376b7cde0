{#- One row per campaign touched on or before the as-of date: return rate of the treated
    against their randomised control group within `campaign_return_window_days`, uplift with
    a 95% confidence interval (normal approximation of the difference of two proportions),
    cost, incremental returns and their cost, revenue of returned people in the window, and
    time to return. No control group, no effect: uplift and everything derived stay null and
    `effect_status` says why; so it does for a campaign sent on the as-of date. -#}
{%- set z = 1.959964 %}
with outcomes as (
    select * from {{ ref('int_campaign_outcomes') }}
),

per_campaign as (
    select
        campaign_id,
        any_value(campaign_type) as campaign_type,
        min(sent_date) as first_sent_date,
        max(sent_date) as last_sent_date,
        string_agg(distinct channel, ',' order by channel) as channels,
        count(*) filter (where touch_group = 'treatment') as treated_users,
        count(*) filter (where touch_group = 'control') as control_users,
        count(*) filter (where touch_group = 'treatment' and returned) as treated_returned,
        count(*) filter (where touch_group = 'control' and returned) as control_returned,
        count(*) filter (where in_both_groups) as users_in_both_groups,
        sum(cost) as cost,
        sum(revenue_in_window) filter (where touch_group = 'treatment' and returned)
            as treated_returned_revenue,
        sum(revenue_in_window) filter (where touch_group = 'control' and returned)
            as control_returned_revenue,
        median(days_to_return) filter (where touch_group = 'treatment')
            as treated_median_days_to_return,
        median(days_to_return) filter (where touch_group = 'control')
            as control_median_days_to_return,
        min(days_observed) as days_observed
    from outcomes
    group by campaign_id
),

rates as (
    -- nothing to compare before a single day of the window has passed
    select
        *,
        case
            when days_observed > 0 then treated_returned / nullif(treated_users, 0)::double
        end as treated_return_rate,
        case
            when days_observed > 0 then control_returned / nullif(control_users, 0)::double
        end as control_return_rate
    from per_campaign
),

effects as (
    select
        *,
        treated_return_rate - control_return_rate as uplift,
        sqrt(
            treated_return_rate * (1 - treated_return_rate) / nullif(treated_users, 0)
            + control_return_rate * (1 - control_return_rate) / nullif(control_users, 0)
        ) as uplift_se
    from rates
),

final as (
    select
        campaign_id,
        {{ as_of_date() }} as as_of_date,
        campaign_type,
        first_sent_date,
        last_sent_date,
        channels,
        treated_users,
        control_users,
        users_in_both_groups,
        treated_returned,
        control_returned,
        treated_return_rate,
        control_return_rate,
        uplift,
        uplift - {{ z }} * uplift_se as uplift_ci_low,
        uplift + {{ z }} * uplift_se as uplift_ci_high,
        cost,
        uplift * treated_users as incremental_returns,
        case when uplift > 0 then cost / (uplift * treated_users) end as cost_per_incremental_return,
        coalesce(treated_returned_revenue, 0) as treated_returned_revenue,
        coalesce(control_returned_revenue, 0) as control_returned_revenue,
        (
            coalesce(treated_returned_revenue, 0) / nullif(treated_users, 0)
            - coalesce(control_returned_revenue, 0) / nullif(control_users, 0)
        ) * treated_users as incremental_revenue,
        treated_median_days_to_return,
        control_median_days_to_return,
        days_observed,
        {{ var('campaign_return_window_days') }} as return_window_days,
        case
            when control_users = 0 then 'no_control_group'
            when treated_users = 0 then 'no_treated_group'
            when days_observed = 0 then 'not_started'
            when days_observed < {{ var('campaign_return_window_days') }} then 'window_open'
            else 'measured'
        end as effect_status
    from effects
)

select * from final
