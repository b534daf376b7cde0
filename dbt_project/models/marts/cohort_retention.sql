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

-- each member's last active day since signup (named activity_date: the grains' period
-- expressions read it as their last active period)
last_active as (
    select
        activity.user_key,
        max(activity.activity_date) as activity_date
    from activity
    inner join members on activity.user_key = members.user_key
    where members.signup_date <= activity.activity_date
    group by activity.user_key
),

{%- for grain, g in grains.items() %}

    {{ grain }}_members as (
        select
            '{{ grain }}' as cohort_period,
            m.*,
            {{ g.start }} as cohort_start
        from members as m
    ),

    -- the reported periods only: a later one counts in "active then or later" through the
    -- member's last active period (capped there), and the day grain's 30 days are a small
    -- part of a year of activity
    {{ grain }}_activity as (
        select distinct
            m.cohort_period,
            m.cohort_start,
            m.acquisition_channel,
            m.user_key,
            {{ g.period }} as period_number
        from {{ grain }}_members as m
        inner join activity as a
            on
                m.user_key = a.user_key
                and m.signup_date <= a.activity_date
                and {{ g.period }} <= {{ g.max }}
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

-- sizes, retained counts and "last active period" counts per cohort and channel: a few
-- rows per cohort, where a grid of every member by every period is ~70 rows per member
cohort_sizes as (
    select
        cohort_period,
        cohort_start,
        acquisition_channel,
        count(*) as cohort_users
    from cohort_members
    group by cohort_period, cohort_start, acquisition_channel
),

retained as (
    select
        cohort_period,
        cohort_start,
        acquisition_channel,
        period_number,
        count(*) as retained_users
    from member_activity
    group by cohort_period, cohort_start, acquisition_channel, period_number
),

-- each member's last active period, capped at the last reported one (active then or
-- later counts the same for every reported period)
last_periods as (
    {%- for grain, g in grains.items() %}
        select
            m.cohort_period,
            m.cohort_start,
            m.acquisition_channel,
            least({{ g.period }}, {{ g.max }}) as last_period_number
        from {{ grain }}_members as m
        inner join last_active as a on m.user_key = a.user_key
        {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

last_counts as (
    select
        cohort_period,
        cohort_start,
        acquisition_channel,
        last_period_number,
        count(*) as last_users
    from last_periods
    group by cohort_period, cohort_start, acquisition_channel, last_period_number
),

by_channel as (
    select
        cohort_sizes.cohort_period,
        cohort_sizes.cohort_start,
        cohort_sizes.acquisition_channel,
        periods.period_number,
        cohort_sizes.cohort_users,
        coalesce(retained.retained_users, 0) as retained_users,
        -- members whose last active period is this one or a later one
        cast(coalesce(sum(last_counts.last_users) over (
            partition by cohort_sizes.cohort_period, cohort_sizes.cohort_start, cohort_sizes.acquisition_channel
            order by periods.period_number desc
            rows between unbounded preceding and current row
        ), 0) as bigint) as retained_or_later_users
    from cohort_sizes
    inner join periods on cohort_sizes.cohort_period = periods.cohort_period
    left join retained
        on
            cohort_sizes.cohort_period = retained.cohort_period
            and cohort_sizes.cohort_start = retained.cohort_start
            and cohort_sizes.acquisition_channel = retained.acquisition_channel
            and periods.period_number = retained.period_number
    left join last_counts
        on
            cohort_sizes.cohort_period = last_counts.cohort_period
            and cohort_sizes.cohort_start = last_counts.cohort_start
            and cohort_sizes.acquisition_channel = last_counts.acquisition_channel
            and periods.period_number = last_counts.last_period_number
),

-- each person has one acquisition channel: the channels add up to everyone
everyone as (
    select
        cohort_period,
        cohort_start,
        'all' as acquisition_channel,
        period_number,
        cast(sum(cohort_users) as bigint) as cohort_users,
        cast(sum(retained_users) as bigint) as retained_users,
        cast(sum(retained_or_later_users) as bigint) as retained_or_later_users
    from by_channel
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
