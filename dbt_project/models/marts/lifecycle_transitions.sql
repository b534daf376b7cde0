{#- One row per day and (from stage, to stage) pair: how many people moved. Feeds flow
    (Sankey) charts. `from_stage` is null for people first seen that day. -#}
with history as (
    select * from {{ ref('user_lifecycle_history') }}
),

final as (
    select
        valid_from as date,
        {{ as_of_date() }} as as_of_date,
        previous_stage as from_stage,
        lifecycle_stage as to_stage,
        count(*) as users
    from history
    group by valid_from, previous_stage, lifecycle_stage
)

select * from final
