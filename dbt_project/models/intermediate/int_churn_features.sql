{#- One row per person per snapshot date: churn features computed only from data on or
    before the snapshot, and the label (entered `churned` within `churn_horizon_days` after
    it). Snapshots (macros/churn_features.sql): the as-of date (scoring; label null) and
    fixed calendar dates every `churn_snapshot_every_days` before it, back far enough for
    `churn_training_snapshots` labelled ones. The population of a snapshot is everyone who
    is a customer that day (new, activated, active, dormant or reactivated): people already
    churned are not in it. A daily run rebuilds only the rows that can have changed (see
    the macros). -#}
{{
    config(
        materialized=("incremental" if target.type == "duckdb" else "table"),
        incremental_strategy="append",
        on_schema_change="sync_all_columns",
        pre_hook="{{ forget_churn_feature_rows() }}",
        post_hook="{{ churn_features_built() }}",
    )
}}
-- depends_on: {{ ref('int_churn_changed_people') }}
{%- set horizon = var('churn_horizon_days') %}
with snapshots as (
    {{ churn_snapshot_dates() }}
),

stages as (
    select * from {{ ref('int_person_day_stage') }}
),

population as (
    select
        stages.user_key,
        stages.day as snapshot_date,
        stages.lifecycle_stage,
        stages.days_since_activity
    from stages
    inner join snapshots on stages.day = snapshots.snapshot_date
    where
        stages.lifecycle_stage in ('new', 'activated', 'active', 'dormant', 'reactivated')
        and {{ churn_rows_to_build('stages.user_key', 'stages.day') }}
),

activity as (
    select
        population.user_key,
        population.snapshot_date,
        {%- for days in [7, 30, 90] %}
            count(*) filter (
                where a.is_active and a.activity_date > population.snapshot_date - {{ days }}
            ) as active_days_{{ days }},
        {%- endfor %}
        count(*) filter (
            where a.is_active
            and a.activity_date <= population.snapshot_date - 7
            and a.activity_date > population.snapshot_date - 14
        ) as active_days_prev_7,
        count(*) filter (
            where a.is_active
            and a.activity_date <= population.snapshot_date - 30
            and a.activity_date > population.snapshot_date - 60
        ) as active_days_prev_30,
        coalesce(sum(a.sessions) filter (where a.activity_date > population.snapshot_date - 7), 0)
            as sessions_7,
        coalesce(sum(a.sessions) filter (where a.activity_date > population.snapshot_date - 30), 0)
            as sessions_30,
        coalesce(sum(a.orders) filter (where a.activity_date > population.snapshot_date - 30), 0)
            as orders_30,
        coalesce(sum(a.orders), 0) as orders_90,
        coalesce(sum(a.revenue) filter (where a.activity_date > population.snapshot_date - 30), 0)
            as spend_30,
        coalesce(sum(a.revenue) filter (
            where a.activity_date <= population.snapshot_date - 30
            and a.activity_date > population.snapshot_date - 60
        ), 0) as spend_prev_30,
        coalesce(sum(a.revenue), 0) as spend_90,
        coalesce(sum(a.support_tickets) filter (
            where a.activity_date > population.snapshot_date - 30
        ), 0) as support_tickets_30,
        coalesce(sum(a.support_tickets), 0) as support_tickets_90,
        sum(a.nps_total) / nullif(sum(a.nps_responses), 0) as nps_avg_90,
        coalesce(sum(a.subscription_payments) filter (
            where a.activity_date > population.snapshot_date
            - {{ var('lifecycle_subscription_period_days') }} - {{ var('lifecycle_subscription_grace_days') }}
        ), 0) as subscription_payments_recent,
        coalesce(sum(a.subscription_cancels), 0) as subscription_cancels_90,
        coalesce(sum(a.app_events), 0) as app_events_90,
        coalesce(sum(a.web_events), 0) as web_events_90,
        coalesce(sum(a.mini_program_events), 0) as mini_program_events_90,
        coalesce(sum(a.store_orders), 0) as store_orders_90,
        coalesce(sum(a.events), 0) as events_90
    from population
    left join {{ ref('int_person_day_activity') }} as a
        on
            population.user_key = a.user_key
            and population.snapshot_date >= a.activity_date
            and a.activity_date > population.snapshot_date - 90
    group by population.user_key, population.snapshot_date
),

campaigns as (
    select
        population.user_key,
        population.snapshot_date,
        count(*) filter (where touches.touch_group = 'treatment') as campaign_touches_90
    from population
    inner join {{ ref('int_campaign_touches') }} as touches
        on
            population.user_key = touches.user_key
            and population.snapshot_date >= touches.sent_date
            and touches.sent_date > population.snapshot_date - 90
    group by population.user_key, population.snapshot_date
),

churn_entries as (
    select
        user_key,
        valid_from as churned_on
    from {{ ref('user_lifecycle_history') }}
    where lifecycle_stage = 'churned'
),

labels as (
    select
        population.user_key,
        population.snapshot_date,
        count(churn_entries.churned_on) > 0 as churned
    from population
    left join churn_entries
        on
            population.user_key = churn_entries.user_key
            and population.snapshot_date < churn_entries.churned_on
            and churn_entries.churned_on <= population.snapshot_date + {{ horizon }}
    group by population.user_key, population.snapshot_date
),

final as (
    select
        population.user_key,
        population.snapshot_date,
        population.snapshot_date = {{ as_of_date() }} as is_scoring_snapshot,
        case
            when population.snapshot_date + {{ horizon }} <= {{ as_of_date() }} then labels.churned
        end as label,
        -- recency and lifecycle
        coalesce(population.days_since_activity, population.snapshot_date - milestones.signup_date)
            as days_since_active,
        population.lifecycle_stage,
        population.snapshot_date - milestones.signup_date as tenure_days,
        milestones.is_activated_in_window and milestones.activation_date <= population.snapshot_date
            as is_activated_in_window,
        -- frequency, trends, spend
        activity.* exclude (user_key, snapshot_date),  -- noqa: RF02
        activity.active_days_7 - activity.active_days_prev_7 as active_days_trend_7,
        activity.active_days_30 - activity.active_days_prev_30 as active_days_trend_30,
        activity.spend_30 - activity.spend_prev_30 as spend_trend_30,
        -- channel mix
        activity.app_events_90 / nullif(activity.events_90, 0) as app_share_90,
        activity.web_events_90 / nullif(activity.events_90, 0) as web_share_90,
        activity.mini_program_events_90 / nullif(activity.events_90, 0) as mini_program_share_90,
        -- campaigns and subscription
        coalesce(campaigns.campaign_touches_90, 0) as campaign_touches_90,
        activity.subscription_payments_recent > 0 as is_subscribed,
        -- profile attributes that do not change over time
        profiles.acquisition_channel,
        profiles.country,
        profiles.gender,
        year(population.snapshot_date) - profiles.birth_year as age_years
    from population
    inner join activity
        on population.user_key = activity.user_key and population.snapshot_date = activity.snapshot_date
    inner join labels
        on population.user_key = labels.user_key and population.snapshot_date = labels.snapshot_date
    inner join {{ ref('int_person_milestones') }} as milestones
        on population.user_key = milestones.user_key
    left join campaigns
        on population.user_key = campaigns.user_key and population.snapshot_date = campaigns.snapshot_date
    left join {{ ref('int_customer_profiles') }} as profiles
        on population.user_key = profiles.user_key
)

select * from final
