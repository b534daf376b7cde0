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
{%- set carried_from = churn_scoring_carried_from(logged=true) %}
{%- set activity_window = churn_activity_window_days() %}
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

{%- if carried_from %}

    -- the scoring rows of the people whose history up to the last build did not change:
    -- the last build's scoring row moved on to the as-of date (macros/churn_features.sql)
    last_scoring as (
        select built.*
        from {{ this }} as built
        where
            built.snapshot_date = {{ carried_from }}
            and built.is_scoring_snapshot
            and built.user_key not in (
                select changed.user_key from {{ ref('int_churn_changed_people') }} as changed
            )
    ),

    carried as (
        select
            population.user_key,
            population.snapshot_date
        from population
        inner join last_scoring on population.user_key = last_scoring.user_key
        where population.snapshot_date = {{ as_of_date() }}
    ),

    -- the activity of the days entering or leaving a window (DuckDB skips the other
    -- days by the constants)
    moved_activity as (
        select
            {%- for feature in churn_windowed_features() %}
                {{ churn_window_change(feature, carried_from, as_of_date()) }} as {{ feature.name }},
            {%- endfor %}
            a.user_key
        from {{ ref('int_person_day_activity') }} as a
        where {{ churn_moved_days('a.activity_date', carried_from) }}
        group by a.user_key
    ),

    -- a ratio, summed again from the window's NPS answers (a few rows)
    window_nps as (
        select
            a.user_key,
            sum(a.nps_total) / nullif(sum(a.nps_responses), 0) as nps_avg_90
        from {{ ref('int_person_day_activity') }} as a
        where
            a.nps_responses <> 0
            and a.activity_date > {{ as_of_date() }} - {{ activity_window }}
            and a.activity_date <= {{ as_of_date() }}
        group by a.user_key
    ),

    carried_activity as (
        select
            carried.user_key,
            {%- for feature in churn_windowed_features() %}
                {%- if feature.name == 'subscription_payments_recent' %}
                    window_nps.nps_avg_90,
                {%- endif %}
                last_scoring.{{ feature.name }} + coalesce(moved_activity.{{ feature.name }}, 0)
                    as {{ feature.name }},
            {%- endfor %}
            carried.snapshot_date
        from carried
        inner join last_scoring on carried.user_key = last_scoring.user_key
        left join moved_activity on carried.user_key = moved_activity.user_key
        left join window_nps on carried.user_key = window_nps.user_key
    ),

    moved_touches as (
        select
            touches.user_key,
            count(*) filter (
                where {{ churn_moved_range('touches.sent_date', carried_from, as_of_date(), 0) }}
            )
            - count(*) filter (
                where {{ churn_moved_range('touches.sent_date', carried_from, as_of_date(), activity_window) }}
            ) as campaign_touches_90
        from {{ ref('int_campaign_touches') }} as touches
        where
            touches.touch_group = 'treatment'
            and {{ churn_moved_days('touches.sent_date', carried_from, [0, activity_window]) }}
        group by touches.user_key
    ),

    carried_campaigns as (
        select
            carried.user_key,
            carried.snapshot_date,
            last_scoring.campaign_touches_90 + coalesce(moved_touches.campaign_touches_90, 0)
                as campaign_touches_90
        from carried
        inner join last_scoring on carried.user_key = last_scoring.user_key
        left join moved_touches on carried.user_key = moved_touches.user_key
    ),

    computed as (
        select population.*
        from population
        anti join carried
            on population.user_key = carried.user_key and population.snapshot_date = carried.snapshot_date
    ),
{%- else %}

    computed as (
        select * from population
    ),
{%- endif %}

computed_activity as (
    -- the same columns in the same order as carried_activity (a union of the two)
    select
        computed.user_key,
        {%- for feature in churn_windowed_features() %}
            {%- if feature.name == 'subscription_payments_recent' %}
                sum(a.nps_total) / nullif(sum(a.nps_responses), 0) as nps_avg_90,
            {%- endif %}
            {{ churn_window_value(feature, 'computed.snapshot_date') }} as {{ feature.name }},
        {%- endfor %}
        computed.snapshot_date
    from computed
    left join {{ ref('int_person_day_activity') }} as a
        on
            computed.user_key = a.user_key
            and computed.snapshot_date >= a.activity_date
            and a.activity_date > computed.snapshot_date - {{ activity_window }}
    group by computed.user_key, computed.snapshot_date
),

activity as (
    select * from computed_activity
    {%- if carried_from %}
        union all
        select * from carried_activity
    {%- endif %}
),

campaigns as (
    select
        computed.user_key,
        computed.snapshot_date,
        count(*) filter (where touches.touch_group = 'treatment') as campaign_touches_90
    from computed
    inner join {{ ref('int_campaign_touches') }} as touches
        on
            computed.user_key = touches.user_key
            and computed.snapshot_date >= touches.sent_date
            and touches.sent_date > computed.snapshot_date - {{ activity_window }}
    group by computed.user_key, computed.snapshot_date
    {%- if carried_from %}
        union all
        select * from carried_campaigns
    {%- endif %}
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
