{#- The people whose rows in int_person_stage_anchors and int_person_day_stage this run
    rebuilds (see macros/changed_people.sql): those of int_changed_people, those whose
    milestones changed, and those whose signup the moved as-of date reaches; one row with no
    person when everyone is rebuilt. Run bookkeeping: `built_by` is the dbt invocation. -#}
-- what the comparison reads (dbt sees these while parsing, when the branch below is not
-- rendered)
-- depends_on: {{ ref('int_changed_people') }}
-- depends_on: {{ ref('int_person_milestones') }}
{%- set everyone = target.type != 'duckdb' or list_says_everyone('int_changed_people') %}

{%- if everyone %}

    {{ everyone_list('everyone', days=true) }}

{%- else %}

    with milestones as (
        select * from {{ ref('int_person_milestones') }}
    ),

    milestone_changes as (
        {{ people_whose_rows_changed('milestones', chain_state('milestones'), milestone_columns()) }}
    ),

    changes as (
        select
            user_key,
            reason,
            changed_from
        from {{ ref('int_changed_people') }}
        union all
        -- milestones shape every day of the person
        select
            user_key,
            'milestones' as reason,
            cast(null as date) as changed_from
        from milestone_changes
        union all
        -- a signup dated after the last build's as-of date starts an interval now
        select
            user_key,
            'milestones' as reason,
            cast(null as date) as changed_from
        from milestones
        where signup_date > {{ chain_built_as_of() }} and signup_date <= {{ as_of_date() }}
    )

    {{ people_list('changes', days=true) }}

{%- endif %}
