{#- Daily builds of int_person_activity_summary (DuckDB): everyone's activity totals gain the
    new days' activity, instead of grouping every person-day again (15M at a million people:
    2.3 s of thread time a large day). A kept person's totals are sums, counts, a minimum and
    a maximum over their days: the stored ones (every day up to the last build's as-of date,
    which did not change for them) combine with the new days'. The people whose whole
    lifecycle history the chain rebuilt (int_stage_changed_people: identity, erasure,
    milestones, staged rows before the last as-of date) get theirs from every day again.
    Everyone is rebuilt on the same terms as the cohort masks (after_chain_rebuild_reason). -#}

{% macro activity_summary_state() -%}
    {{ intermediate_relation('int_person_activity_summary_state') }}
{%- endmacro %}

{% macro activity_summary_fingerprint() -%}
    {{ return(fingerprint([], ['int_person_activity_summary'])) }}
{%- endmacro %}

{#- The as-of date of the summary's last build as a date literal, when this build only adds
    the new days; none when it rebuilds everyone. -#}
{% macro activity_summary_built_as_of(logged=false) -%}
    {%- if target.type != 'duckdb' or not execute or not is_incremental() -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set reason = logged_rebuild_reason(activity_summary_rebuild_reason) if logged
        else activity_summary_rebuild_reason() -%}
    {%- if reason -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return("date '" ~ state_row('int_person_activity_summary_state')['as_of_date'] ~ "'") }}
{%- endmacro %}

{#- Why int_person_activity_summary rebuilds everyone, or ''. -#}
{% macro activity_summary_rebuild_reason() -%}
    {{ return(after_chain_rebuild_reason(
        ['intermediate.int_person_activity_summary', 'intermediate.int_person_activity_summary_state'],
        'int_person_activity_summary_state', activity_summary_fingerprint())) }}
{%- endmacro %}

{#- Pre-hook: delete the rows summed from every day again (every row when everyone is). -#}
{% macro forget_rebuilt_activity_summaries() -%}
    {%- if target.type == 'duckdb' and is_incremental() -%}
        delete from {{ this }}
        {%- if activity_summary_built_as_of() %}
            where user_key in ({{ rebuilt_people(ref('int_stage_changed_people'), whole_history=true) }})
        {%- endif -%}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- Post-hook: what the next build checks it builds on. -#}
{% macro activity_summary_built() -%}
    {%- if target.type == 'duckdb' -%}
        create or replace table {{ activity_summary_state() }} as
        select
            {{ as_of_date() }} as as_of_date,
            '{{ activity_summary_fingerprint() }}' as fingerprint,
            '{{ invocation_id }}' as built_by
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
