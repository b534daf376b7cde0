{#- Incremental builds of int_event_sightings (DuckDB).

    The events' part of the identity sightings is a sum over staged events: each distinct
    combination of identifiers with its first time and count. A daily run adds the events it
    has not seen to it (merged by the combination's key: the earlier first time, the counts
    summed) instead of grouping every staged event again (7.2 s a day at 100M events):
      * the rows of the events staging builds logged since its last build (the build log,
        staging.stg_events__all__builds), and
      * the rows of earlier builds that the moved as-of date reaches.
    A sum cannot lose a row, so it is built from every staged event when one may have left
    or been counted already: a build that removed staged rows (rows_left: files gone or
    restaged), a build that rewrote earlier rows of an id it staged again (a redelivery or
    a shared id hash: the build stamps every row of such an id with its run, so a row of
    the unseen builds comes from a file counted before; two copies within the day's new
    files are ranked like any others and count once), and on the first build, a full
    refresh, an earlier as-of date, a changed business time zone or model (the
    fingerprint), or a staging without the build log. The state lives in three tables
    beside the model (as-of date and fingerprint, the builds seen, the files counted). -#}

{% macro event_sightings_state(part) -%}
    {{ intermediate_relation('int_event_sightings_' ~ part) }}
{%- endmacro %}

{% macro event_sightings_fingerprint() -%}
    {{ return(fingerprint([var('business_timezone')], ['int_event_sightings'])) }}
{%- endmacro %}

{#- The logged events staging builds the last build of int_event_sightings did not see
    (compile time). -#}
{% macro event_sightings_unseen_builds() -%}
    select * from {{ staging_build_log('events') }}
    where _staging_run not in (select seen._staging_run from {{ event_sightings_state('runs') }} as seen)
{%- endmacro %}

{% macro event_sightings_unseen_runs() -%}
    {{ return(run_query("select _staging_run from (" ~ event_sightings_unseen_builds()
                        ~ ") as unseen order by 1").columns[0].values() | list) }}
{%- endmacro %}

{#- Why int_event_sightings must be built from every staged event ('' when it only adds the
    unseen ones). -#}
{% macro event_sightings_rebuild_reason() -%}
    {%- set first = first_build_reason([
        'intermediate.int_event_sightings',
        'intermediate.int_event_sightings_state',
        'intermediate.int_event_sightings_runs',
        'intermediate.int_event_sightings_files']) -%}
    {%- if first -%}
        {{ return(first) }}
    {%- endif -%}
    {%- if staging_build_log('events') is none -%}
        {{ return('no staging build log') }}
    {%- endif -%}
    {%- set state = run_query("select * from " ~ event_sightings_state('state')).rows -%}
    {%- if state | length != 1 or state[0]['fingerprint'] != event_sightings_fingerprint() -%}
        {{ return('a var or the model changed') }}
    {%- endif -%}
    {%- if state[0]['as_of_date'] | string > var('as_of_date') -%}
        {{ return('the as-of date went back') }}
    {%- endif -%}
    {%- set removed = run_query("select coalesce(bool_or(coalesce(rows_left, true)), false) from ("
                                ~ event_sightings_unseen_builds() ~ ") as unseen").columns[0].values()[0] -%}
    {%- if removed -%}
        {{ return('a staging build removed staged rows') }}
    {%- endif -%}
    {%- set rewritten = run_query(
        "select count(*) from (select 1 from " ~ ref('stg_events__all') ~ " as staged where "
        ~ runs_condition(event_sightings_unseen_runs()) ~ " and exists (select 1 from "
        ~ event_sightings_state('files') ~ " as counted where counted.path = staged._file"
        ~ " and counted.modified_at = staged._file_modified_at) limit 1) as rewritten"
    ).columns[0].values()[0] -%}
    {%- if rewritten > 0 -%}
        {{ return('a staging build rewrote earlier rows of an id it staged again') }}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}

{#- The staged events int_event_sightings has not counted and the as-of date lets in: the
    rows of the unseen builds, and the earlier builds' rows from the end of the last build's
    as-of date (two reads, each skipping row groups by one constant). -#}
{% macro unseen_sighted_events(relation) -%}
    {%- set runs = runs_condition(event_sightings_unseen_runs()) -%}
    {%- set built_as_of = run_query("select cast(as_of_date as varchar) from " ~ event_sightings_state('state')).columns[0].values()[0] -%}
    {%- set built_end = local_to_utc("cast(date '" ~ built_as_of ~ "' + interval 1 day as timestamp)", var('business_timezone')) -%}
    select * from {{ relation }}
    where {{ runs }} and occurred_at < {{ as_of_end_utc() }}
    union all
    select * from {{ relation }}
    where
        occurred_at >= {{ built_end }} and occurred_at < {{ as_of_end_utc() }}
        and not ({{ runs }})
{%- endmacro %}

{#- Pre-hook: a build from every staged event starts from nothing (delete+insert would keep
    the combinations no staged event has any more). -#}
{% macro forget_event_sightings() -%}
    {%- if target.type == 'duckdb' and is_incremental() and event_sightings_rebuild_reason() -%}
        delete from {{ this }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- Post-hook: what the next build compares with: this as-of date and fingerprint, the
    files whose rows it counted (the unseen builds' files added to those counted before, or
    every staged file), and every logged staging build as seen. -#}
{% macro event_sightings_built() -%}
    {%- if target.type == 'duckdb' -%}
        {%- if is_incremental() and not event_sightings_rebuild_reason() %}
        insert into {{ event_sightings_state('files') }}
        select distinct
            staged._file as path,
            staged._file_modified_at as modified_at
        from {{ ref('stg_events__all') }} as staged
        where
            {{ runs_condition(event_sightings_unseen_runs()) }}
            and not exists (
                select 1 from {{ event_sightings_state('files') }} as counted
                where counted.path = staged._file and counted.modified_at = staged._file_modified_at
            );
        {%- else %}
        create or replace table {{ event_sightings_state('files') }} as
        select distinct
            _file as path,
            _file_modified_at as modified_at
        from {{ ref('stg_events__all') }};
        {%- endif %}
        create or replace table {{ event_sightings_state('state') }} as
        select
            {{ as_of_date() }} as as_of_date,
            '{{ event_sightings_fingerprint() }}' as fingerprint,
            '{{ invocation_id }}' as built_by;
        {%- set log = staging_build_log('events') %}
        create or replace table {{ event_sightings_state('runs') }} as
        {%- if log is not none %}
        select distinct _staging_run from {{ log }}
        {%- else %}
        select cast(null as varchar) as _staging_run where false
        {%- endif %}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
