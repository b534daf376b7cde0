{#- Daily builds of int_quarantine_rows (DuckDB): add the rows of the staging builds it has
    not seen, instead of reading every staged row's reject reason again. The rejected rows
    lie in every row group of the staged events (a few per 2,048 rows), so a full build
    decompresses every row group's ids, files and row numbers (the scan 2.0 s of thread
    time, the node 2.3 s a day at 100M events). A staging build writes its new rows and rewrites every stored row of the keys it
    touched (delete+insert by the key; see macros/incremental.sql), stamping all of them with
    its `_staging_run`, and removes rows only where its log says `rows_left` (files gone, or
    everything staged again). So the quarantine of a source changes by: every row of the
    keys the unseen builds wrote (deleted, then their rejected rows inserted again) and the
    rejected rows without a key (new rows only). Everything is read again on a first build,
    a full refresh, a changed model, a source without a build log, or an unseen build that
    may have removed rows; the privacy requests (staged whole every run, no log) always. -#}

{#- source -> its key (the staged table's unique_key, the quarantine's record_id). -#}
{% macro quarantine_sources() -%}
    {{ return({
        'events': "event_id",
        'orders': "order_id",
        'customers': "user_id",
        'campaign_touches': "touch_id",
        'privacy_requests': "request_id",
    }) }}
{%- endmacro %}

{#- The sources whose staging logs its builds (incremental staging). -#}
{% macro logged_quarantine_sources() -%}
    {{ return(['events', 'orders', 'customers', 'campaign_touches']) }}
{%- endmacro %}

{% macro quarantine_runs_state() -%}
    {{ intermediate_relation('int_quarantine_rows_runs') }}
{%- endmacro %}

{% macro quarantine_fingerprint() -%}
    {{ return(fingerprint([], ['int_quarantine_rows'])) }}
{%- endmacro %}

{#- source -> the logged builds it has not seen, and whether any of them may have removed
    rows; asked only once the first-build reasons are ruled out. -#}
{% macro unseen_quarantine_builds() -%}
    {%- set unseen = {} -%}
    {%- set removed = [] -%}
    {%- for source_name in logged_quarantine_sources() -%}
        {%- set found = run_query(
            "select _staging_run, coalesce(rows_left, true) from " ~ staging_build_log(source_name)
            ~ " where _staging_run not in (select seen._staging_run from " ~ quarantine_runs_state()
            ~ " as seen where seen.source = '" ~ source_name ~ "') order by 1") -%}
        {%- do unseen.update({source_name: found.columns[0].values() | list}) -%}
        {%- if true in (found.columns[1].values() | list) -%}
            {%- do removed.append(source_name) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return({'runs': unseen, 'removed': removed}) }}
{%- endmacro %}

{#- Why every staged row is read again ('' when only the unseen builds' rows are). -#}
{% macro quarantine_rebuild_reason() -%}
    {%- set first = first_build_reason([
        'intermediate.int_quarantine_rows', 'intermediate.int_quarantine_rows_runs',
        'intermediate.int_quarantine_rows_state']) -%}
    {%- if first -%}
        {{ return(first) }}
    {%- endif -%}
    {%- set built = state_row('int_quarantine_rows_state') -%}
    {%- if built is none or built['fingerprint'] != quarantine_fingerprint() -%}
        {{ return('int_quarantine_rows changed') }}
    {%- endif -%}
    {%- for source_name in logged_quarantine_sources() -%}
        {%- if staging_build_log(source_name) is none -%}
            {{ return('no log of the ' ~ source_name ~ ' staging builds') }}
        {%- endif -%}
    {%- endfor -%}
    {%- set removed = unseen_quarantine_builds()['removed'] -%}
    {%- if removed -%}
        {{ return('a staging build of ' ~ removed | join(', ') ~ ' may have removed rows') }}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}

{#- source -> the unseen builds' runs, on a daily build; none when every row is read. -#}
{% macro quarantine_daily_runs(logged=false) -%}
    {%- if target.type != 'duckdb' or not execute or not is_incremental() -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set reason = logged_rebuild_reason(quarantine_rebuild_reason) if logged
        else quarantine_rebuild_reason() -%}
    {{ return(none if reason else unseen_quarantine_builds()['runs']) }}
{%- endmacro %}

{#- Pre-hook: delete the rows about to be written again (every row on a full build). -#}
{% macro forget_rewritten_quarantine_rows() -%}
    {%- if target.type == 'duckdb' and is_incremental() -%}
        {%- set runs = quarantine_daily_runs() -%}
        {%- if runs is none -%}
            delete from {{ this }}
        {%- else -%}
            delete from {{ this }} where source = 'privacy_requests';
            {%- for source_name, key in quarantine_sources().items() if source_name in runs %}
            delete from {{ this }}
            where
                source = '{{ source_name }}'
                and record_id in (
                    select rewritten.{{ key }} from {{ ref('stg_' ~ source_name ~ '__all') }} as rewritten
                    where {{ runs_condition(runs[source_name]) }}
                );
            {%- endfor %}
        {%- endif -%}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- Post-hook: every logged staging build is seen now. -#}
{% macro quarantine_rows_built() -%}
    {%- if target.type == 'duckdb' -%}
        create or replace table {{ quarantine_runs_state() }} as
        {%- for source_name in logged_quarantine_sources() %}
            {%- set log = staging_build_log(source_name) %}
        select '{{ source_name }}' as source, _staging_run
        from {% if log is none %}(select cast(null as varchar) as _staging_run where false) as none_logged{% else %}{{ log }}{% endif %}
            {% if not loop.last %}union all{% endif %}
        {%- endfor %};
        create or replace table {{ intermediate_relation('int_quarantine_rows_state') }} as
        select '{{ quarantine_fingerprint() }}' as fingerprint, '{{ invocation_id }}' as built_by
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
