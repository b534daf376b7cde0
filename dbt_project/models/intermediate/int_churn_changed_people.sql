{#- The people whose rows in int_churn_features this run rebuilds at every snapshot (see
    macros/churn_features.sql): those of int_stage_changed_people (lifecycle days,
    milestones), and those whose CRM profile or treatment touches changed since
    int_churn_features was last built; one row with no person when everyone is rebuilt.
    Run bookkeeping: `built_by` is the dbt invocation. -#}
-- what the comparison reads (dbt sees these while parsing, when the branch below is not
-- rendered); the lifecycle chain must be complete: its state says what it was built on
-- depends_on: {{ ref('int_stage_changed_people') }}
-- depends_on: {{ ref('int_customer_profiles') }}
-- depends_on: {{ ref('int_campaign_touches') }}
-- depends_on: {{ ref('user_lifecycle_history') }}
{%- set everyone = churn_features_rebuild_reason() if target.type == 'duckdb' else 'not incremental here' %}
{%- if execute and everyone %}
    {{ log("int_churn_changed_people: everyone (" ~ everyone ~ ")", info=true) }}
{%- endif %}

{%- if everyone %}

    {{ everyone_list('everyone: ' ~ everyone) }}

{%- else %}

    with profiles as (
        select * from {{ ref('int_customer_profiles') }}
    ),

    built_profiles as (
        select * from {{ churn_features_state('profiles') }}
    ),

    profile_changes as (
        select coalesce(profiles.user_key, built_profiles.user_key) as user_key
        from profiles
        full outer join built_profiles on profiles.user_key = built_profiles.user_key
        where
            profiles.user_key is null
            or built_profiles.user_key is null
            or profiles.acquisition_channel is distinct from built_profiles.acquisition_channel
            or profiles.country is distinct from built_profiles.country
            or profiles.gender is distinct from built_profiles.gender
            or profiles.birth_year is distinct from built_profiles.birth_year
    ),

    touches as (
        {{ churn_treatment_touches() }}
    ),

    built_touches as (
        select * from {{ churn_features_state('touches') }}
    ),

    touch_changes as (
        select coalesce(touches.user_key, built_touches.user_key) as user_key
        from touches
        full outer join built_touches
            on touches.user_key = built_touches.user_key and touches.sent_date = built_touches.sent_date
        where touches.touches is distinct from built_touches.touches
    ),

    changes as (
        select
            user_key,
            reason
        from {{ ref('int_stage_changed_people') }}
        union all
        select
            user_key,
            'profile' as reason
        from profile_changes
        union all
        select
            user_key,
            'touches' as reason
        from touch_changes
    )

    {{ people_list('changes') }}

{%- endif %}
