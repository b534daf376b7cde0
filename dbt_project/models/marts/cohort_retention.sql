{#- One row per cohort period (day / week / month), cohort start, acquisition channel ('all'
    for everyone) and period number: how many of the cohort (people who signed up in it)
    were active in period N (`retained_users`) and in period N or later
    (`retained_or_later_users`). A period is only reported once the whole cohort has reached
    its end. -#}
{%- set grains = {
    'day': {
        'start': "m.signup_date",
        'period': "a.activity_date - m.cohort_start",
        'period_end': "cohort_start + cast(period_number as integer)",
        'max': var('retention_max_days'),
    },
    'week': {
        'start': "cast(date_trunc('week', m.signup_date) as date)",
        'period': "(cast(date_trunc('week', a.activity_date) as date) - m.cohort_start) // 7",
        'period_end': "cohort_start + cast(7 * period_number + 6 as integer)",
        'max': var('retention_max_weeks'),
    },
    'month': {
        'start': "cast(date_trunc('month', m.signup_date) as date)",
        'period': "date_diff('month', m.cohort_start, cast(date_trunc('month', a.activity_date) as date))",
        'period_end': "cast(last_day(cohort_start + to_months(cast(period_number as integer))) as date)",
        'max': var('retention_max_months'),
    },
} %}
with members as (
    select
        milestones.user_key,
        milestones.signup_date,
        coalesce(profiles.acquisition_channel, 'unknown') as acquisition_channel
    from {{ ref('int_person_milestones') }} as milestones
    left join {{ ref('int_customer_profiles') }} as profiles
        on milestones.user_key = profiles.user_key
    where milestones.signup_date is not null
),

activity as (
    select
        user_key,
        activity_date
    from {{ ref('int_person_day_activity') }}
    where is_active
),

{%- for grain, g in grains.items() %}

    {{ grain }}_members as (
        select
            '{{ grain }}' as cohort_period,
            m.*,
            {{ g.start }} as cohort_start
        from members as m
    ),

    {{ grain }}_activity as (
        select distinct
            m.cohort_period,
            m.cohort_start,
            m.acquisition_channel,
            m.user_key,
            {{ g.period }} as period_number
        from {{ grain }}_members as m
        inner join activity as a
            on m.user_key = a.user_key and m.signup_date <= a.activity_date
    ),
{%- endfor %}

cohort_members as (
    {%- for grain in grains %}
        select
            cohort_period,
            cohort_start,
            acquisition_channel,
            user_key
        from {{ grain }}_members
        {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

member_activity as (
    {%- for grain in grains %}
        select * from {{ grain }}_activity
        {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

periods as (
    {%- for grain, g in grains.items() %}
        select
            '{{ grain }}' as cohort_period,
            unnest(range(0, {{ g.max + 1 }})) as period_number
        {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

last_period as (
    select
        cohort_period,
        user_key,
        max(period_number) as last_period_number
    from member_activity
    group by cohort_period, user_key
),

member_periods as (
    select
        cohort_members.cohort_period,
        cohort_members.cohort_start,
        cohort_members.acquisition_channel,
        cohort_members.user_key,
        periods.period_number,
        member_activity.user_key is not null as is_retained,
        coalesce(last_period.last_period_number >= periods.period_number, false) as is_retained_or_later
    from cohort_members
    inner join periods on cohort_members.cohort_period = periods.cohort_period
    left join member_activity
        on
            cohort_members.cohort_period = member_activity.cohort_period
            and cohort_members.user_key = member_activity.user_key
            and periods.period_number = member_activity.period_number
    left join last_period
        on
            cohort_members.cohort_period = last_period.cohort_period
            and cohort_members.user_key = last_period.user_key
),

by_channel as (
    select
        cohort_period,
        cohort_start,
        acquisition_channel,
        period_number,
        count(*) as cohort_users,
        count(*) filter (where is_retained) as retained_users,
        count(*) filter (where is_retained_or_later) as retained_or_later_users
    from member_periods
    group by cohort_period, cohort_start, acquisition_channel, period_number
),

everyone as (
    select
        cohort_period,
        cohort_start,
        'all' as acquisition_channel,
        period_number,
        count(*) as cohort_users,
        count(*) filter (where is_retained) as retained_users,
        count(*) filter (where is_retained_or_later) as retained_or_later_users
    from member_periods
    group by cohort_period, cohort_start, period_number
),

aggregated as (
    select * from by_channel
    union all
    select * from everyone
),

final as (
    select
        cohort_period,
        cohort_start,
        {{ as_of_date() }} as as_of_date,
        acquisition_channel,
        period_number,
        cohort_users,
        retained_users,
        retained_users / cohort_users as retention_rate,
        retained_or_later_users,
        retained_or_later_users / cohort_users as retention_or_later_rate
    from aggregated
    where
        case cohort_period
            {%- for grain, g in grains.items() %}
                when '{{ grain }}' then {{ g.period_end }} <= {{ as_of_date() }}
            {%- endfor %}
        end
)

select * from final
