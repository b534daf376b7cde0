{#- Person-level incremental builds (DuckDB).

    `int_events` and `int_person_day_activity` are per person: a person's rows depend only on
    that person's staged events and orders, their identity and the vars. A daily run rebuilds
    the rows of the people whose inputs changed since the chain's last complete build
    (`int_changed_people`) and keeps everyone else's, which gives a full refresh's answer:
      * an identity merge re-keys a person's whole history, so the unit is the person, not
        the day (a day lookback would miss it);
      * events are compared with what int_events was built from by their staging lineage:
        rows of staging builds the chain has not seen (a re-ranked row is stamped with the
        build that re-ranked it), rows the moved as-of date lets in, and built rows whose
        file and staging build are gone (withdrawn or restaged files);
      * tuples and orders are compared with snapshots taken when the chain last finished;
      * erased people are always rebuilt (to nothing);
      * everyone is rebuilt when the as-of date went back (a backfill), a var or chain model
        changed (the fingerprint), or the last build stopped between the two models.
    The state lives in small tables beside the models (see chain_state()). -#}

{% macro chain_state(part) -%}
    {{ this.database }}.{{ this.schema }}.int_person_chain_{{ part }}
{%- endmacro %}

{#- What, besides the raw data, shapes the chain's rows: its vars and its models' code. -#}
{% macro chain_fingerprint() -%}
    {%- set parts = [
        var('business_timezone'), var('activity_event_types') | join(','),
        var('lifecycle_activation_event_types') | join(','),
    ] -%}
    {%- if execute -%}
        {%- for name in ['int_changed_people', 'int_events', 'int_person_day_activity'] -%}
            {%- do parts.append(graph.nodes['model.ulm.' ~ name].checksum.checksum) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(local_md5(parts | join('|'))) }}
{%- endmacro %}

{#- Why everyone must be rebuilt, or none. Asked by int_changed_people only. -#}
{% macro chain_rebuild_reason() -%}
    {%- if not execute -%}
        {{ return('parsing') }}
    {%- endif -%}
    {%- if flags.FULL_REFRESH -%}
        {{ return('full refresh') }}
    {%- endif -%}
    {%- for name in ['int_events', 'int_person_day_activity', 'int_person_chain_state',
                     'int_person_chain_tuples', 'int_person_chain_orders',
                     'int_person_chain_runs'] -%}
        {%- if adapter.get_relation(this.database, this.schema, name) is none -%}
            {{ return('no ' ~ name ~ ' yet') }}
        {%- endif -%}
    {%- endfor -%}
    {%- set state = run_query(
        "select as_of_date, fingerprint, events_built_by, activity_built_by from "
        ~ chain_state('state')) -%}
    {%- if state.rows | length != 1 -%}
        {{ return('no chain state') }}
    {%- endif -%}
    {%- set row = state.rows[0] -%}
    {%- if row['activity_built_by'] is none or row['events_built_by'] != row['activity_built_by'] -%}
        {{ return('the last build stopped between int_events and int_person_day_activity') }}
    {%- endif -%}
    {%- if row['as_of_date'] | string > var('as_of_date') -%}
        {{ return('the as-of date went back') }}
    {%- endif -%}
    {%- if row['fingerprint'] != chain_fingerprint() -%}
        {{ return('a var or a chain model changed') }}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}

{#- True when this build must rebuild every person: int_changed_people says so, or it was
    not built by this invocation (a partial selection would otherwise trust a stale list). -#}
{% macro everyone_changed() -%}
    {%- if not execute or not is_incremental() -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set found = run_query(
        "select count(*) filter (where user_key is null), count(*) filter (where built_by = '"
        ~ invocation_id ~ "') from " ~ ref('int_changed_people')) -%}
    {{ return(found.rows[0][0] > 0 or found.rows[0][1] == 0) }}
{%- endmacro %}

{#- Model filter: only the changed people's rows (nothing when everyone is rebuilt). -#}
{% macro only_changed_people(column) -%}
    {%- if target.type == 'duckdb' and is_incremental() and not everyone_changed() -%}
        and {{ column }} in (select changed.user_key from {{ ref('int_changed_people') }} as changed)
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook: delete the rows about to be rebuilt. -#}
{% macro forget_changed_people() -%}
    {%- if target.type == 'duckdb' and is_incremental() -%}
        delete from {{ this }}
        {%- if not everyone_changed() %}
            where user_key in (select changed.user_key from {{ ref('int_changed_people') }} as changed)
        {%- endif -%}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- Post-hook of int_events: the chain is half built until int_person_day_activity says
    otherwise. -#}
{% macro chain_events_built() -%}
    {%- if target.type == 'duckdb' -%}
        create or replace table {{ chain_state('state') }} as
        select
            cast(null as date) as as_of_date,
            cast(null as varchar) as fingerprint,
            '{{ invocation_id }}' as events_built_by,
            cast(null as varchar) as activity_built_by
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- Post-hooks of int_person_day_activity: the snapshots the next run compares with, and the
    state that says the chain is complete. -#}
{% macro chain_activity_built() -%}
    {%- if target.type == 'duckdb' -%}
        create or replace table {{ chain_state('runs') }} as
        select distinct _staging_run from {{ ref('stg_events') }};
        create or replace table {{ chain_state('tuples') }} as
        select tuple_key, user_key from {{ ref('int_identity_tuples') }};
        create or replace table {{ chain_state('orders') }} as
        select order_id, user_key, order_date, status, channel, revenue from {{ ref('int_orders') }};
        update {{ chain_state('state') }}
        set
            as_of_date = {{ as_of_date() }},
            fingerprint = '{{ chain_fingerprint() }}',
            activity_built_by = '{{ invocation_id }}'
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
