{#- The people whose rows in int_churn_features this run rebuilds at every snapshot (see
    macros/churn_features.sql): those of int_stage_changed_people whose whole lifecycle
    history was rebuilt (lifecycle days up to the chain's last as-of date, milestones), and
    those whose CRM profile or treatment touches changed since
    int_churn_features was last built; one row with no person when everyone is rebuilt.
    Run bookkeeping: `built_by` is the dbt invocation. -#}
-- what the comparison reads (dbt sees these while parsing, when the branch below is not
-- rendered); the lifecycle chain must be complete: its state says what it was built on
-- depends_on: {{ ref('int_stage_changed_people') }}
-- depends_on: {{ ref('int_customer_profiles') }}
-- depends_on: {{ ref('int_campaign_touches') }}
-- depends_on: {{ ref('user_lifecycle_history') }}
{%- set everyone = logged_rebuild_reason(churn_features_rebuild_reason) %}

{%- if everyone %}

    {{ everyone_list('everyone: ' ~ everyone) }}

{%- else %}

    with touches as (
        {{ churn_treatment_touches() }}
    ),

    profile_changes as (
        {{ people_whose_rows_changed(
            ref('int_customer_profiles'), churn_features_state('profiles'), churn_profile_columns()
        ) }}
    ),

    touch_changes as (
        {{ people_whose_rows_changed(
            'touches', churn_features_state('touches'), ['touches'], keys=['user_key', 'sent_date']
        ) }}
    ),

    changes as (
        -- the people whose lifecycle changed before the chain's last as-of date: the others'
        -- changes lie after every kept snapshot and its label window (see
        -- macros/churn_features.sql)
        select
            user_key,
            reason
        from {{ ref('int_stage_changed_people') }}
        where whole_history
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
