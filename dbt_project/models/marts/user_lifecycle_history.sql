{#- One row per person per stage interval: consecutive days in the same stage collapsed. -#}
with stages as (
    select * from {{ ref('int_person_day_stage') }}
),

-- consecutive days in one stage share day minus their number within the stage (one sort
-- of the person-day rows, where marking each change and summing the marks takes two)
islands as (
    select
        user_key,
        lifecycle_stage,
        day,
        is_active,
        {{ dbt.dateadd('day', '-row_number() over (partition by user_key, lifecycle_stage order by day)', 'day') }}
            as island
    from stages
),

intervals as (
    select
        user_key,
        lifecycle_stage,
        min(day) as valid_from,
        max(day) as last_day,
        count(*) filter (where is_active) as active_days
    from islands
    group by user_key, lifecycle_stage, island
),

final as (
    select
        user_key,
        {{ as_of_date() }} as as_of_date,
        lifecycle_stage,
        valid_from,
        case when last_day < {{ as_of_date() }} then last_day + 1 end as valid_to,
        lag(lifecycle_stage) over (partition by user_key order by valid_from) as previous_stage,
        {{ days_between('valid_from', 'last_day') }} + 1 as days_in_stage,
        active_days
    from intervals
)

select * from final
