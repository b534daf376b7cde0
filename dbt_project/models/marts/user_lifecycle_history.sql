{#- One row per person per stage interval: consecutive days in the same stage collapsed. -#}
with stages as (
    select * from {{ ref('int_person_day_stage') }}
),

changes as (
    select
        *,
        case
            when lifecycle_stage = lag(lifecycle_stage) over (partition by user_key order by day) then 0
            else 1
        end as is_start
    from stages
),

islands as (
    select
        *,
        sum(is_start) over (
            partition by user_key order by day rows between unbounded preceding and current row
        ) as interval_number
    from changes
),

intervals as (
    select
        user_key,
        interval_number,
        lifecycle_stage,
        min(day) as valid_from,
        max(day) as last_day,
        count(*) filter (where is_active) as active_days
    from islands
    group by user_key, interval_number, lifecycle_stage
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
