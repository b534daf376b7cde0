{#- One row per date per stage: people in the stage that day, and how many entered and left
    it that day. Every stage appears every day (zeros included).

    Counted from the stage intervals, not the person-day rows: an interval's first day is an
    entry (a person's first day included), its valid_to the day they left, and the people in
    a stage on a day are the running sum of entries less exits (a few million intervals
    instead of ~200M person-days at the large benchmark). -#}
with history as (
    select * from {{ ref('user_lifecycle_history') }}
),

stage_names as (
    {%- for stage in ['prospect', 'new', 'activated', 'active', 'dormant', 'churned', 'reactivated'] %}
        select '{{ stage }}' as lifecycle_stage
        {%- if not loop.last %} union all{% endif %}
    {%- endfor %}
),

bounds as (
    select min(valid_from) as first_day from history
),

calendar as (
    select calendar.day
    from {{ each_day('bounds', 'bounds.first_day', as_of_date(), 'calendar') }}
),

entries as (
    select
        valid_from as day,
        lifecycle_stage,
        count(*) as entered
    from history
    group by valid_from, lifecycle_stage
),

exits as (
    select
        valid_to as day,
        lifecycle_stage,
        count(*) as exited
    from history
    where valid_to is not null
    group by valid_to, lifecycle_stage
),

moves as (
    select
        calendar.day,
        stage_names.lifecycle_stage,
        coalesce(entries.entered, 0) as entered,
        coalesce(exits.exited, 0) as exited
    from calendar
    cross join stage_names
    left join entries
        on calendar.day = entries.day and stage_names.lifecycle_stage = entries.lifecycle_stage
    left join exits
        on calendar.day = exits.day and stage_names.lifecycle_stage = exits.lifecycle_stage
),

final as (
    select
        day as date,
        {{ as_of_date() }} as as_of_date,
        lifecycle_stage,
        cast(sum(entered - exited) over (
            partition by lifecycle_stage order by day rows between unbounded preceding and current row
        ) as bigint) as users,
        entered,
        exited
    from moves
)

select * from final
