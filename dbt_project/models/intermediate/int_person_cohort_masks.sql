{#- One row per cohort member (a person with a signup date) active since signing up: the
    reported periods of each grain they were active in, as the bits of a few integers
    (`day_mask_0` holds day periods 0-61, ...), and their last active period of each grain
    (capped at the last reported one: active then or later counts the same for every
    reported period). cohort_retention counts them per cohort. A daily run adds the new
    days' bits to everyone's stored masks and builds the masks of the people whose whole
    history changed from every day again (macros/cohort_masks.sql): at 1M people (15M
    active days) the masks from every day cost 2.7-3.2 s a day. -#}
{{
    config(
        materialized=("incremental" if target.type == "duckdb" else "table"),
        incremental_strategy="delete+insert",
        unique_key="user_key",
        on_schema_change="sync_all_columns",
        pre_hook="{{ forget_rebuilt_cohort_masks() }}",
        post_hook="{{ cohort_masks_built() }}",
    )
}}
-- the chain must be complete: its state says what this build is on top of
-- depends_on: {{ ref('int_stage_changed_people') }}
-- depends_on: {{ ref('user_lifecycle_history') }}
-- depends_on: {{ ref('int_person_day_activity') }}
{%- set built_as_of = cohort_masks_built_as_of(logged=true) %}
{%- set grains = cohort_grains() %}
{%- set masks = cohort_masks() %}
{%- if execute and built_as_of %}
    {{ log("int_person_cohort_masks: adding the days after " ~ built_as_of
           ~ " (and every day of the people whose whole history changed)", info=true) }}
{%- endif %}
with members as (
    select
        user_key,
        signup_date
    from {{ ref('int_person_milestones') }}
    where signup_date is not null
),

activity as (
    {{ activity_after_chain(built_as_of) }}
),

-- every member's active days since signup
member_days as (
    select
        activity.user_key,
        activity.activity_date,
        members.signup_date
    from activity
    inner join members on activity.user_key = members.user_key
    where activity.is_active and members.signup_date <= activity.activity_date
),

day_masks as (
    select
        user_key,
        {%- for mask in masks %}
            bit_or(
                case
                    when {{ grains[mask.grain].period }} between {{ mask.low }} and {{ mask.high }}
                        then {{ shift_one_left(grains[mask.grain].period ~ ' - ' ~ mask.low) }}
                    else 0
                end
            ) as {{ mask.name }},
        {%- endfor %}
        {%- for grain, g in grains.items() %}
            least(max({{ g.period }}), {{ g.max }}) as {{ grain }}_last_period{% if not loop.last %},{% endif %}
        {%- endfor %}
    from member_days
    group by user_key
),

final as (
    {%- if built_as_of %}
        -- a kept member's stored masks gain the new days' bits (the rebuilt people's rows
        -- are gone: pre-hook); delete+insert replaces their rows
        select
            day_masks.user_key,
            {%- for mask in masks %}
                day_masks.{{ mask.name }} | coalesce(built.{{ mask.name }}, 0) as {{ mask.name }},
            {%- endfor %}
            {%- for grain in grains %}
                greatest(
                    day_masks.{{ grain }}_last_period, coalesce(built.{{ grain }}_last_period, day_masks.{{ grain }}_last_period)
                ) as {{ grain }}_last_period{% if not loop.last %},{% endif %}
            {%- endfor %}
        from day_masks
        left join {{ this }} as built on day_masks.user_key = built.user_key
    {%- else %}
        select * from day_masks
    {%- endif %}
)

select * from final
