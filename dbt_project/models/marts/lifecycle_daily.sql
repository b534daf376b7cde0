{#- One row per date per stage: people in the stage that day, and how many entered and left
    it that day. Every stage appears every day (zeros included). -#}
with stages as (
    select
        *,
        lag(lifecycle_stage) over (partition by user_key order by day) as previous_stage
    from {{ ref('int_person_day_stage') }}
),

stage_names as (
    {%- for stage in ['prospect', 'new', 'activated', 'active', 'dormant', 'churned', 'reactivated'] %}
        select '{{ stage }}' as lifecycle_stage
        {%- if not loop.last %} union all{% endif %}
    {%- endfor %}
),

calendar as (
    select distinct day from stages
),

counts as (
    select
        day,
        lifecycle_stage,
        count(*) as users,
        count(*) filter (where previous_stage is distinct from lifecycle_stage) as entered
    from stages
    group by day, lifecycle_stage
),

exits as (
    select
        day,
        previous_stage as lifecycle_stage,
        count(*) as exited
    from stages
    where previous_stage is not null and previous_stage <> lifecycle_stage
    group by day, previous_stage
),

final as (
    select
        calendar.day as date,
        {{ as_of_date() }} as as_of_date,
        stage_names.lifecycle_stage,
        coalesce(counts.users, 0) as users,
        coalesce(counts.entered, 0) as entered,
        coalesce(exits.exited, 0) as exited
    from calendar
    cross join stage_names
    left join counts
        on calendar.day = counts.day and stage_names.lifecycle_stage = counts.lifecycle_stage
    left join exits
        on calendar.day = exits.day and stage_names.lifecycle_stage = exits.lifecycle_stage
)

select * from final
