{#- Daily builds of int_person_activity_summary (DuckDB): everyone's activity totals gain the
    new days' activity, instead of grouping every person-day again (15M at a million people:
    2.3 s of thread time a large day). A kept person's totals are sums, counts, a minimum and
    a maximum over their days: the stored ones (every day up to the last build's as-of date,
    which did not change for them) combine with the new days'. The people whose whole
    lifecycle history the chain rebuilt (int_stage_changed_people: identity, erasure,
    milestones, staged rows before the last as-of date) get theirs from every day again.
    Everyone is rebuilt on the same terms as the cohort masks (after_chain_rebuild_reason). -#}

{% macro activity_summary_fingerprint() -%}
    {{ return(fingerprint([], ['int_person_activity_summary'])) }}
{%- endmacro %}

{#- Why int_person_activity_summary rebuilds everyone, or ''. -#}
{% macro activity_summary_rebuild_reason() -%}
    {{ return(after_chain_rebuild_reason(
        ['intermediate.int_person_activity_summary', 'intermediate.int_person_activity_summary_state'],
        'int_person_activity_summary_state', activity_summary_fingerprint())) }}
{%- endmacro %}

{#- The as-of date of the summary's last build as a date literal, when this build only adds
    the new days; none when it rebuilds everyone (after_chain_built_as_of). -#}
{% macro activity_summary_built_as_of(logged=false) -%}
    {{ return(after_chain_built_as_of('int_person_activity_summary_state', activity_summary_rebuild_reason, logged)) }}
{%- endmacro %}

{#- Pre-hook: delete the rows summed from every day again (every row when everyone is). -#}
{% macro forget_rebuilt_activity_summaries() -%}
    {{ forget_people_rebuilt_after_chain(activity_summary_built_as_of()) }}
{%- endmacro %}

{#- Post-hook: what the next build checks it builds on. -#}
{% macro activity_summary_built() -%}
    {{ built_after_chain('int_person_activity_summary_state', activity_summary_fingerprint()) }}
{%- endmacro %}
