{#- Cohort retention's periods (cohort_retention, int_person_cohort_masks).

    A member's active periods of each grain are the bits of a few integers (62 periods to
    an integer, `bit_or` over their active days since signup). int_person_cohort_masks keeps
    them per person, so a daily run (DuckDB) reads the new days' activity, not everyone's
    history again: a kept person's masks gain the bits of their new active days (a bit once
    set stays: the periods count from signup, which did not move for them), and the people
    whose whole lifecycle history the chain rebuilt (int_stage_changed_people: identity,
    erasure, milestones such as a signup, staged rows before the last as-of date) get
    masks from all their days again. Everyone is rebuilt on a first build, a full refresh,
    a changed var or model, when the chain rebuilt everyone, or when the last build of the
    masks was not on top of the chain's last build (a failed or skipped build between). -#}

{#- Per grain: the cohort start, the period of an activity date, the last day of a period
    and the last period reported. -#}
{% macro cohort_grains() -%}
    {%- set week_start = "cast(date_trunc('week', signup_date) as date)" -%}
    {%- set month_start = "cast(date_trunc('month', signup_date) as date)" -%}
    {{ return({
        'day': {
            'start': "signup_date",
            'period': "activity_date - signup_date",
            'period_end': "cohort_start + cast(period_number as integer)",
            'max': var('retention_max_days'),
        },
        'week': {
            'start': week_start,
            'period': "(cast(date_trunc('week', activity_date) as date) - " ~ week_start ~ ") // 7",
            'period_end': "cohort_start + cast(7 * period_number + 6 as integer)",
            'max': var('retention_max_weeks'),
        },
        'month': {
            'start': month_start,
            'period': "date_diff('month', " ~ month_start ~ ", cast(date_trunc('month', activity_date) as date))",
            'period_end': "cast(last_day(cohort_start + to_months(cast(period_number as integer))) as date)",
            'max': var('retention_max_months'),
        },
    }) }}
{%- endmacro %}

{#- One mask per grain and block of 62 periods (day_mask_0, week_mask_0, ...): its name,
    grain and the periods it holds. -#}
{% macro cohort_masks() -%}
    {%- set bits = 62 -%}
    {%- set masks = [] -%}
    {%- for grain, g in cohort_grains().items() -%}
        {%- for block in range(g.max // bits + 1) -%}
            {%- do masks.append({
                'name': grain ~ '_mask_' ~ block, 'grain': grain,
                'low': block * bits, 'high': [block * bits + bits - 1, g.max] | min,
            }) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(masks) }}
{%- endmacro %}

{% macro cohort_masks_fingerprint() -%}
    {{ return(fingerprint([
        var('retention_max_days'), var('retention_max_weeks'), var('retention_max_months'),
    ], ['int_person_cohort_masks'])) }}
{%- endmacro %}

{#- Why int_person_cohort_masks rebuilds everyone, or '' (DuckDB). -#}
{% macro cohort_masks_rebuild_reason() -%}
    {{ return(after_chain_rebuild_reason(
        ['intermediate.int_person_cohort_masks', 'intermediate.int_person_cohort_masks_state'],
        'int_person_cohort_masks_state', cohort_masks_fingerprint())) }}
{%- endmacro %}

{#- The as-of date of the masks' last build as a date literal, when this build only adds the
    new days; none when it rebuilds everyone (after_chain_built_as_of). -#}
{% macro cohort_masks_built_as_of(logged=false) -%}
    {{ return(after_chain_built_as_of('int_person_cohort_masks_state', cohort_masks_rebuild_reason, logged)) }}
{%- endmacro %}

{#- Pre-hook: delete the rows built from every day again (every row when everyone is). -#}
{% macro forget_rebuilt_cohort_masks() -%}
    {{ forget_people_rebuilt_after_chain(cohort_masks_built_as_of()) }}
{%- endmacro %}

{#- Post-hook: what the next build checks it builds on. -#}
{% macro cohort_masks_built() -%}
    {{ built_after_chain('int_person_cohort_masks_state', cohort_masks_fingerprint()) }}
{%- endmacro %}
