{#- Person-level incremental builds (DuckDB).

    The chain `int_events` -> `int_person_day_activity` -> `int_person_stage_anchors` ->
    `int_person_day_stage` -> `user_lifecycle_history` is per person: a person's rows depend
    only on that person's staged events and orders, their identity, their milestones and the
    vars. A daily run rebuilds the rows of the people whose inputs changed since the chain's
    last complete build (`int_changed_people` for the first two; `int_stage_changed_people`
    adds the people whose milestones changed for the last three) and keeps everyone else's:
    their lifecycle only gains the days after the last build, expanded from their last
    anchor, and their current stage interval is extended or closed. Every row of a person is
    a function of their data up to that day (the clocks only look back), so a listed person
    whose changes all lie after the last build's as-of date (`changed_from`: new events and
    orders of the new days, most of a day's changes) keeps their rows before it too: their
    activity gains the changed days, their anchors are rebuilt, and their days and intervals
    grow like everyone else's (`whole_history` false). That gives a full refresh's answer:
      * an identity merge re-keys a person's whole history, so the unit is the person, not
        the day (a day lookback would miss it);
      * events are compared with what int_events was built from by their staging lineage:
        rows of staging builds the chain has not seen (a re-ranked row is stamped with the
        build that re-ranked it), rows the moved as-of date lets in, and built rows whose
        file and staging build are gone (withdrawn or restaged files; looked for only when
        an unseen staging build may have removed rows);
      * tuples and orders are compared with snapshots taken when the chain last finished;
      * erased people are always rebuilt (to nothing);
      * milestones (first seen, signup, activation) are compared with a snapshot, and a
        signup the moved as-of date reaches starts a new interval;
      * everyone is rebuilt when the as-of date went back (a backfill), a var or chain model
        changed (the fingerprint), or the last build stopped before the chain's end.
    The state lives in small tables beside the models (see chain_state()). -#}

{#- A table of the intermediate schema, whichever model or test asks (schemas are the layer
    names). -#}
{% macro chain_state(part) -%}
    {{ intermediate_relation('int_person_chain_' ~ part) }}
{%- endmacro %}

{% macro chain_models() -%}
    {{ return(['int_changed_people', 'int_events', 'int_person_day_activity',
               'int_person_milestones', 'int_subscription_lapses', 'int_stage_changed_people',
               'int_person_stage_anchors', 'int_person_day_stage', 'user_lifecycle_history']) }}
{%- endmacro %}

{#- A fingerprint of what, besides the data, shapes some models' rows: the given values
    (vars) and the models' code. -#}
{% macro fingerprint(values, models) -%}
    {%- set parts = values | list -%}
    {%- if execute -%}
        {%- for name in models -%}
            {%- do parts.append(graph.nodes['model.ulm.' ~ name].checksum.checksum) -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(local_md5(parts | join('|'))) }}
{%- endmacro %}

{#- What, besides the raw data, shapes the chain's rows: its vars and its models' code. -#}
{% macro chain_fingerprint() -%}
    {{ return(fingerprint([
        var('business_timezone'), var('activity_event_types') | join(','),
        var('lifecycle_activation_event_types') | join(','),
        var('lifecycle_activation_window_days'), var('lifecycle_activated_period_days'),
        var('lifecycle_dormant_after_days'), var('lifecycle_churned_after_days'),
        var('lifecycle_reactivated_period_days'), var('lifecycle_subscription_period_days'),
        var('lifecycle_subscription_grace_days'),
    ], chain_models())) }}
{%- endmacro %}

{#- What every incremental build here starts from everything for: parsing, a full refresh,
    or one of its tables (`schema.table`: the model and its state) not there yet; '' when
    none applies. -#}
{% macro first_build_reason(tables) -%}
    {%- if not execute -%}
        {{ return('parsing') }}
    {%- endif -%}
    {%- if flags.FULL_REFRESH -%}
        {{ return('full refresh') }}
    {%- endif -%}
    {%- for name in tables -%}
        {%- set schema, table = name.split('.') -%}
        {%- if adapter.get_relation(this.database, schema, table) is none -%}
            {{ return('no ' ~ name ~ ' yet') }}
        {%- endif -%}
    {%- endfor -%}
    {{ return('') }}
{%- endmacro %}

{#- Why everyone must be rebuilt, or none. Asked by int_changed_people only. -#}
{% macro chain_rebuild_reason() -%}
    {%- set first = first_build_reason([
        'intermediate.int_events', 'intermediate.int_person_day_activity',
        'intermediate.int_person_stage_anchors', 'intermediate.int_person_day_stage',
        'marts.user_lifecycle_history', 'intermediate.int_person_chain_state',
        'intermediate.int_person_chain_tuples', 'intermediate.int_person_chain_orders',
        'intermediate.int_person_chain_runs', 'intermediate.int_person_chain_milestones']) -%}
    {%- if first -%}
        {{ return(first) }}
    {%- endif -%}
    {%- set state = run_query("select * from " ~ chain_state('state')) -%}
    {%- if state.rows | length != 1 or 'history_built_by' not in state.column_names -%}
        {{ return('no chain state of this version') }}
    {%- endif -%}
    {%- set row = state.rows[0] -%}
    {%- if row['history_built_by'] is none or row['as_of_date'] is none
        or row['events_built_by'] != row['activity_built_by']
        or row['events_built_by'] != row['stage_built_by']
        or row['events_built_by'] != row['history_built_by'] -%}
        {{ return('the last build stopped before the end of the chain (user_lifecycle_history)') }}
    {%- endif -%}
    {%- if row['as_of_date'] | string > var('as_of_date') -%}
        {{ return('the as-of date went back') }}
    {%- endif -%}
    {%- if row['fingerprint'] != chain_fingerprint() -%}
        {{ return('a var or a chain model changed') }}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}

{#- The lists of changed people (int_changed_people, int_stage_changed_people) hold one row
    per person with the first reason that applies, or one row without a person when
    everyone is rebuilt; `built_by` is the dbt invocation that wrote the list. -#}
{#- `flags`: boolean columns of the changes, true for a person when any of their changes
    says so (true on the row that means everyone). `days`: the changes have `changed_from`,
    the first day they touch (null: every day); the list keeps each person's first one
    (null when any is null), and `whole_history`, whether it lies on or before the as-of
    date of the chain's last complete build (their rows are all rebuilt) or only in the
    days after it (which everyone gains anyway: the rows before stay). -#}
{% macro everyone_list(reason, flags=[], days=false) -%}
    select
        cast(null as {{ dbt.type_string() }}) as user_key,
        '{{ reason }}' as reason,
        {%- for flag in flags %}
            true as {{ flag }},
        {%- endfor %}
        {%- if days %}
            cast(null as date) as changed_from,
            true as whole_history,
        {%- endif %}
        '{{ invocation_id }}' as built_by
{%- endmacro %}

{% macro people_list(changes, flags=[], days=false) -%}
    select
        user_key,
        reason,
        {%- for flag in flags %}
            {{ flag }},
        {%- endfor %}
        {%- if days %}
            changed_from,
            changed_from is null
            or changed_from <= {{ chain_state_constant('built_state.as_of_date', 'date') }} as whole_history,
        {%- endif %}
        '{{ invocation_id }}' as built_by
    from (
        select
            user_key,
            {%- for flag in flags %}
                bool_or({{ flag }}) as {{ flag }},
            {%- endfor %}
            {%- if days %}
                case when bool_and(changed_from is not null) then min(changed_from) end as changed_from,
            {%- endif %}
            min(reason) as reason
        from {{ changes }}
        where user_key is not null
        group by user_key
    ) as people
{%- endmacro %}

{#- Staged events (columns _staging_run, occurred_at) the chain has not seen: staged, or
    re-ranked (the ranking stamps those), by a staging build after its last complete build,
    or inside the days the as-of date moved over.

    The builds and the day are written into the SQL as constants, asked while it is
    compiled (from the staging build log and the chain's state, which change only at the
    chain's end): DuckDB then skips, by their min/max, the row groups holding neither, where
    a subquery made it read every row's columns (at 100M events 4.1 s against 0.01 s a
    read). Without the build log (a warehouse staged by an older version) the builds are a
    subquery. -#}
{% macro events_build_log() -%}
    {{ return(adapter.get_relation(target.database, 'staging', 'stg_events__all__builds')
              if execute else none) }}
{%- endmacro %}

{#- The logged staging builds the chain has not seen. -#}
{% macro unseen_builds(log) -%}
    select * from {{ log }} where _staging_run not in (select runs._staging_run from {{ chain_state('runs') }} as runs)
{%- endmacro %}

{% macro unseen_staging_runs_condition() -%}
    {%- set runs_state = chain_state('runs') -%}
    {%- set log = events_build_log() -%}
    {%- if log is none -%}
        _staging_run not in (select runs._staging_run from {{ runs_state }} as runs)
    {%- else -%}
        {%- set runs = run_query("select distinct _staging_run from (" ~ unseen_builds(log)
                                 ~ ") as unseen order by 1").columns[0].values() | list -%}
        {{ runs_condition(runs) }}
    {%- endif -%}
{%- endmacro %}

{#- Whether a staging build the chain has not seen may have removed staged events (files
    gone, or everything staged again: see log_staging_build), so that a built row's staged
    row may be gone. Otherwise every staged row the chain built from is still there or was
    rewritten by an unseen build (its id is unseen), and the search for built rows whose
    staged row is gone is left out (at 100M events it read every built and staged row's
    lineage: ~5 s a day). True without the log or its column (an older version's). -#}
{% macro unseen_builds_removed_rows() -%}
    {%- set log = events_build_log() -%}
    {%- if log is none or 'rows_left' not in adapter.get_columns_in_relation(log) | map(attribute='name') | list -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set found = run_query(
        "select coalesce(bool_or(coalesce(rows_left, true)), false) from (" ~ unseen_builds(log)
        ~ ") as unseen") -%}
    {{ return(found.columns[0].values()[0]) }}
{%- endmacro %}

{#- `expression` over the chain's state (alias built_state), asked while the SQL is
    compiled and written into it as a constant of `type`, so that DuckDB skips row groups by
    their min/max (a subquery makes it read every row's column); the subquery where there is
    no state yet. -#}
{% macro chain_state_constant(expression, type) -%}
    {%- set state = chain_state('state') -%}
    {%- set found = run_query("select cast(" ~ expression ~ " as varchar) from " ~ state ~ " as built_state").columns[0].values()
        if execute and adapter.get_relation(target.database, 'intermediate', 'int_person_chain_state') is not none
        else [] -%}
    {%- if found | length == 1 and found[0] is not none -%}
        {{ type }} '{{ found[0] }}'
    {%- else -%}
        (select {{ expression }} from {{ state }} as built_state)
    {%- endif -%}
{%- endmacro %}

{% macro unseen_window_condition() -%}
    {%- set start = local_to_utc("cast(built_state.as_of_date + interval 1 day as timestamp)",
                                 var('business_timezone')) -%}
    occurred_at >= {{ chain_state_constant(start, 'timestamp') }}
{%- endmacro %}

{% macro unseen_staged_events_condition() -%}
    ({{ unseen_staging_runs_condition() }} or {{ unseen_window_condition() }})
{%- endmacro %}

{#- The unseen rows of `relation` (staged events, or int_events by their lineage): two
    reads, each of which skips row groups by one constant (an OR of both skips none). -#}
{% macro unseen_staged_events(relation, columns='*') -%}
    {%- set runs = unseen_staging_runs_condition() -%}
    select {{ columns }} from {{ relation }} where {{ runs }}
    union all
    select {{ columns }} from {{ relation }} where {{ unseen_window_condition() }} and not ({{ runs }})
{%- endmacro %}

{#- Why an incremental build rebuilds everyone ('' when it rebuilds what changed: the people
    of a list of changed people, the touched identity components): `why` (a macro) asked on
    DuckDB only, and logged. -#}
{% macro logged_rebuild_reason(why) -%}
    {%- set reason = why() if target.type == 'duckdb' else 'not incremental here' -%}
    {%- if execute and reason -%}
        {{ log(this.name ~ ": everyone (" ~ reason ~ ")", info=true) }}
    {%- endif -%}
    {{ return(reason) }}
{%- endmacro %}

{#- The people whose row in `current` differs from the snapshot `built` taken at the last
    build (matched on `keys`; a row on one side only counts), compared on `columns`. -#}
{% macro people_whose_rows_changed(current, built, columns, keys=['user_key']) -%}
    select coalesce(current_rows.user_key, built_rows.user_key) as user_key
    from {{ current }} as current_rows
    full outer join {{ built }} as built_rows
        on
            {%- for key in keys %}
                {{ 'and ' if not loop.first }}current_rows.{{ key }} = built_rows.{{ key }}
            {%- endfor %}
    where
        current_rows.{{ keys[0] }} is null
        or built_rows.{{ keys[0] }} is null
        {%- for column in columns %}
            or current_rows.{{ column }} is distinct from built_rows.{{ column }}
        {%- endfor %}
{%- endmacro %}

{#- What int_stage_changed_people compares of int_person_milestones (and the snapshot
    keeps). -#}
{% macro milestone_columns() -%}
    {{ return(['first_seen_date', 'signup_date', 'activation_date', 'is_activated_in_window']) }}
{%- endmacro %}

{#- True when the list `changed` (int_changed_people or int_stage_changed_people) says
    everyone, or was not built by this invocation (a partial selection would otherwise trust
    a stale list). -#}
{% macro list_says_everyone(changed) -%}
    {%- if not execute or load_relation(ref(changed)) is none -%}
        {{ return(true) }}
    {%- endif -%}
    {{ return(list_relation_says_everyone(ref(changed))) }}
{%- endmacro %}

{% macro list_relation_says_everyone(relation) -%}
    {%- set found = run_query(
        "select count(*) filter (where user_key is null), count(*) filter (where built_by = '"
        ~ invocation_id ~ "') from " ~ relation) -%}
    {{ return(found.rows[0][0] > 0 or found.rows[0][1] == 0) }}
{%- endmacro %}

{#- True when this incremental build must rebuild every person. -#}
{% macro everyone_changed(changed='int_changed_people') -%}
    {{ return(not execute or not is_incremental() or list_says_everyone(changed)) }}
{%- endmacro %}

{#- The people of a list of changed people (a relation) whose rows are all rebuilt:
    everyone listed, or with `whole_history` only those whose changes reach the days up to
    the chain's last as-of date (the others' rows before it stay). -#}
{% macro rebuilt_people(list, whole_history=false) -%}
    select changed.user_key from {{ list }} as changed
    {%- if whole_history %} where changed.whole_history{% endif %}
{%- endmacro %}

{#- Model filter: only the rebuilt people's rows (nothing when everyone is rebuilt). -#}
{% macro only_changed_people(column, changed='int_changed_people', whole_history=false) -%}
    {%- if target.type == 'duckdb' and is_incremental() and not everyone_changed(changed) -%}
        and {{ column }} in ({{ rebuilt_people(ref(changed), whole_history) }})
    {%- endif -%}
{%- endmacro %}

{#- The rows of `relation` (a source of int_person_day_activity) that the daily run
    rebuilds from: every row of the people whose whole history is rebuilt, and the others'
    rows from the first day their change touches (all after the chain's last as-of date,
    where DuckDB skips the older row groups by the constant); every row otherwise. -#}
{% macro changed_activity_sources(relation, day_column) -%}
    {%- if target.type == 'duckdb' and is_incremental() and not everyone_changed() -%}
        select * from {{ relation }}
        where user_key in ({{ rebuilt_people(ref('int_changed_people'), whole_history=true) }})
        union all
        select changed_rows.*
        from {{ relation }} as changed_rows
        inner join {{ ref('int_changed_people') }} as changed
            on changed_rows.user_key = changed.user_key and changed_rows.{{ day_column }} >= changed.changed_from
        where
            not changed.whole_history
            and changed_rows.{{ day_column }} > {{ chain_state_constant('built_state.as_of_date', 'date') }}
    {%- else -%}
        select * from {{ relation }}
    {%- endif -%}
{%- endmacro %}

{#- The changed people whose every event int_events rebuilds (not erased: they have none). -#}
{% macro people_with_all_events() -%}
    select changed.user_key
    from {{ ref('int_changed_people') }} as changed
    where changed.all_events and changed.reason <> 'erased'
{%- endmacro %}

{#- int_events' source: the staged events up to the as-of date; on a daily run only the
    events the chain has not seen, and every event of a person whose every event is
    rebuilt. Everyone else's built rows stay as they are: an event's row depends only on
    the event and its person's identity, and the ids of the unseen events are deleted first
    (forget_changed_events). At 100M events the changed people of a day hold ~13% of all
    events, which a per-person rebuild deleted and wrote again. The people whose every
    event is rebuilt are found by a 64-bit hash of the four identifiers, matched against
    those people's tuples, which costs far less per row than building every row's tuple key
    (a collision only lets a row through to the exact join on the tuple key); that read is
    left out on a day without any. -#}
{% macro changed_staged_events() -%}
    {%- if target.type == 'duckdb' and is_incremental() and not everyone_changed() -%}
        {%- set found = run_query("select count(*) from (" ~ people_with_all_events() ~ ") as people") -%}
        select * from ({{ unseen_staged_events(ref('stg_events')) }}) as unseen
        where occurred_at < {{ as_of_end_utc() }}
        {%- if found.columns[0].values()[0] > 0 %}
            union all
            select * from {{ ref('stg_events') }}
            where
                occurred_at < {{ as_of_end_utc() }}
                and {{ identity_tuple_hash('user_id', 'anonymous_id', 'email_hash', 'phone_hash') }} in (
                    select
                        {{ identity_tuple_hash(
                            "split_part(tuples.tuple_key, chr(31), 1)", "split_part(tuples.tuple_key, chr(31), 2)",
                            "split_part(tuples.tuple_key, chr(31), 3)", "split_part(tuples.tuple_key, chr(31), 4)"
                        ) }}
                    from {{ ref('int_identity_tuples') }} as tuples
                    where tuples.user_key in ({{ people_with_all_events() }})
                )
                and not {{ unseen_staged_events_condition() }}
        {%- endif %}
    {%- else -%}
        select * from {{ ref('stg_events') }}
        where occurred_at < {{ as_of_end_utc() }}
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook of int_events: delete the rows about to be rebuilt, those of the people whose
    every event is rebuilt and those of the unseen events' ids (another copy of the event
    was built before, or the unseen copy is still after the as-of date). -#}
{% macro forget_changed_events() -%}
    {%- if target.type == 'duckdb' and is_incremental() -%}
        delete from {{ this }}
        {%- if not everyone_changed() %}
            {%- set unseen_event_keys -%}
                select unseen._event_key from ({{ unseen_staged_events(ref('stg_events'), '_event_key') }}) as unseen
            {%- endset %}
            -- the rows by their row ids, gathered in two reads: a condition with OR read
            -- every row's ids (2.1 s at the large benchmark; 0.7 s so, measured)
            where rowid in (
                select rowid as row_id
                from {{ this }}
                where user_key in (
                    select changed.user_key from {{ ref('int_changed_people') }} as changed
                    where changed.all_events
                )
                union all
                -- by the ids' hashes first (key_hash), then the ids of the rows they match
                select matched.row_id
                from (
                    select
                        rowid as row_id,
                        event_id
                    from {{ this }}
                    where {{ rows_by_key(this, '_event_key', unseen_event_keys) }}
                ) as matched
                where matched.event_id in (
                    select unseen.event_id
                    from ({{ unseen_staged_events(ref('stg_events'), 'event_id') }}) as unseen
                )
            )
        {%- endif -%}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook: delete the rows about to be rebuilt (see rebuilt_people). -#}
{% macro forget_changed_people(changed='int_changed_people', whole_history=false) -%}
    {%- if target.type == 'duckdb' and is_incremental() -%}
        delete from {{ this }}
        {%- if not everyone_changed(changed) %}
            where user_key in ({{ rebuilt_people(ref(changed), whole_history) }})
        {%- endif -%}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook of int_person_day_activity: delete the rows about to be rebuilt
    (changed_activity_sources): two statements, as an OR of both conditions probes every
    row. -#}
{% macro forget_changed_activity() -%}
    {{ forget_changed_people(whole_history=true) }}
    {%- if target.type == 'duckdb' and is_incremental() and not everyone_changed() %};
        delete from {{ this }} as built
        using {{ ref('int_changed_people') }} as changed
        where
            built.user_key = changed.user_key
            and not changed.whole_history
            and built.activity_date >= changed.changed_from
            and built.activity_date > {{ chain_state_constant('built_state.as_of_date', 'date') }}
    {%- endif -%}
{%- endmacro %}

{#- The as-of date of the chain's last complete build (kept until this build completes it). -#}
{% macro chain_built_as_of() -%}
    (select built_state.as_of_date from {{ chain_state('state') }} as built_state)
{%- endmacro %}

{#- The rows of `relation` on the days after the chain's last build, and every row of the
    `people` (a select of user keys): two reads, one skipping row groups by the day, one
    semi-join (an OR of both probed every row: the stage key test 3.2 -> 2.5 s a large
    day, 236M person-days). -#}
{% macro new_days_and_people_rows(relation, day_column, people) -%}
    {%- set after = day_column ~ ' > ' ~ chain_state_constant('built_state.as_of_date', 'date') -%}
    select * from {{ relation }} where {{ after }}
    union all
    select * from {{ relation }}
    where not ({{ after }}) and user_key in ({{ people }})
{%- endmacro %}

{#- Post-hook of int_events: the chain is part built until user_lifecycle_history says
    otherwise; the last complete build's as-of date stays (the stage models expand the days
    after it). -#}
{% macro chain_events_built() -%}
    {%- if target.type == 'duckdb' -%}
        {%- set built_as_of = none -%}
        {%- if adapter.get_relation(this.database, 'intermediate', 'int_person_chain_state') is not none -%}
            {%- set found = run_query("select * from " ~ chain_state('state')) -%}
            {%- if found.rows | length == 1 and 'as_of_date' in found.column_names
                and found.rows[0]['as_of_date'] is not none -%}
                {%- set built_as_of = found.rows[0]['as_of_date'] | string -%}
            {%- endif -%}
        {%- endif -%}
        create or replace table {{ chain_state('state') }} as
        select
            cast({{ "'" ~ built_as_of ~ "'" if built_as_of else 'null' }} as date) as as_of_date,
            cast(null as date) as previous_as_of_date,
            cast(null as varchar) as fingerprint,
            '{{ invocation_id }}' as events_built_by,
            cast(null as varchar) as activity_built_by,
            cast(null as varchar) as stage_built_by,
            cast(null as varchar) as history_built_by
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- The snapshots the chain compares with: the model, its key, the columns compared. -#}
{% macro chain_snapshots() -%}
    {{ return({
        'tuples': ('int_identity_tuples', 'tuple_key', ['user_key']),
        'orders': ('int_orders', 'order_id', ['user_key', 'order_date', 'status', 'channel', 'revenue']),
    }) }}
{%- endmacro %}

{#- Pre-hook of int_changed_people on a daily run: the rows of int_identity_tuples and
    int_orders that differ from the snapshots of the chain's last complete build (new, gone,
    or another person or value), with the current values and the snapshot's (`built_`
    columns). int_changed_people reads them, and the end of the chain
    applies them to the snapshots instead of copying both tables again (5M rows each at the
    large benchmark: ~4 s a day). A build that rebuilds everyone copies both tables and
    drops any differences a stopped build left. -#}
{% macro chain_snapshot_differences() -%}
    {%- if target.type == 'duckdb' and execute and not chain_rebuild_reason() -%}
        {%- set written = {'tuples': tuples_written_since_chain(), 'orders': orders_written_since_chain()} %}
        {%- if written['tuples'] %}
            {{- log('int_changed_people: compares only the combinations of identifiers '
                    ~ 'int_identity_tuples wrote with the snapshot', info=true) }}
        {%- endif %}
        {%- if written['orders'] %}
            {{- log('int_changed_people: compares only the orders int_orders wrote or deleted '
                    ~ 'with the snapshot', info=true) }}
        {%- endif %}
        {%- for part, spec in chain_snapshots().items() %}
            {%- set model, key, columns = spec %}
            {%- set only_written = written[part] %}
        create or replace table {{ chain_state(part ~ '_differences') }} as
        select
            coalesce(current_rows.{{ key }}, built.{{ key }}) as {{ key }},
            {%- for column in columns %}
            current_rows.{{ column }},
            built.{{ column }} as built_{{ column }},
            {%- endfor %}
            current_rows.{{ key }} is not null as is_current,
            built.{{ key }} is not null as was_built
        {%- if only_written %}
        -- only the rows the model wrote or deleted can differ
        from (
            select * from {{ ref(model) }}
            where {{ key }} in (select written.{{ key }} from {{ only_written }} as written)
        ) as current_rows
        full outer join (
            select * from {{ chain_state(part) }}
            where {{ key }} in (select written.{{ key }} from {{ only_written }} as written)
        ) as built on current_rows.{{ key }} = built.{{ key }}
        {%- else %}
        from {{ ref(model) }} as current_rows
        full outer join {{ chain_state(part) }} as built on current_rows.{{ key }} = built.{{ key }}
        {%- endif %}
        where
            current_rows.{{ key }} is null
            or built.{{ key }} is null
            {%- for column in columns %}
            or current_rows.{{ column }} is distinct from built.{{ column }}
            {%- endfor %};
        {%- endfor %}
    {%- elif target.type == 'duckdb' -%}
        {%- for part in chain_snapshots() %}
        drop table if exists {{ chain_state(part ~ '_differences') }};
        {%- endfor %}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- The combinations of identifiers int_identity_tuples wrote or deleted (a relation), when
    that is all that changed in it since the chain's last complete build: it was built now,
    not whole, and its build before was in that same invocation (the snapshot of the tuples,
    taken at the chain's end, is the table as that build left it). None otherwise. -#}
{% macro tuples_written_since_chain() -%}
    {%- set tuples = state_row('int_identity_tuples_state') -%}
    {%- set chain = state_row('int_person_chain_state') -%}
    {%- if tuples is not none and chain is not none
        and tuples.get('built_by') == invocation_id
        and tuples.get('wrote_everything') == false
        and tuples.get('previous_built_by') is not none
        and tuples.get('previous_built_by') == chain.get('history_built_by') -%}
        {{ return(identity_tuple_changes()) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}

{#- The orders int_orders wrote or deleted (a relation), when that is all that changed in it
    since the chain's last complete build: built now, not whole, and its build before was
    in that same invocation (the chain's snapshot of the orders is the table as that build
    left it). None otherwise. -#}
{% macro orders_written_since_chain() -%}
    {%- set orders = state_row('int_orders_state') -%}
    {%- set chain = state_row('int_person_chain_state') -%}
    {%- if orders_written() is not none and chain is not none
        and orders.get('previous_built_by') is not none
        and orders.get('previous_built_by') == chain.get('history_built_by') -%}
        {{ return(orders_written()) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}

{#- The snapshot `part` brought up to date: its differing rows replaced by the current ones
    (see chain_snapshot_differences); the differences are dropped. -#}
{% macro apply_snapshot_differences(part) -%}
    {%- set model, key, columns = chain_snapshots()[part] -%}
    delete from {{ chain_state(part) }}
    where {{ key }} in (select changed.{{ key }} from {{ chain_state(part ~ '_differences') }} as changed);
    insert into {{ chain_state(part) }} ({{ key }}, {{ columns | join(', ') }})
    select {{ key }}, {{ columns | join(', ') }} from {{ chain_state(part ~ '_differences') }} where is_current;
    drop table {{ chain_state(part ~ '_differences') }};
{%- endmacro %}

{#- Post-hooks of int_person_day_activity: the snapshots the next run compares with. -#}
{% macro chain_activity_built() -%}
    {%- if target.type == 'duckdb' -%}
        {%- set log = events_build_log() -%}
        {%- if is_incremental() and not everyone_changed() and log is not none %}
        -- every staging build so far wrote rows the chain has now seen: the runs it saw
        -- before and the logged builds (instead of the distinct runs of every staged row,
        -- 6.4 s at 100M events)
        create or replace table {{ chain_state('runs') }} as
        select runs._staging_run from {{ chain_state('runs') }} as runs
        union
        select builds._staging_run from {{ log }} as builds;
        {%- else %}
        create or replace table {{ chain_state('runs') }} as
        select distinct _staging_run from {{ ref('stg_events') }};
        {%- endif %}
        {%- for part, spec in chain_snapshots().items() %}
            {%- set model, key, columns = spec %}
            {%- if is_incremental() and not everyone_changed() %}
        -- the list is this build's and not everyone: int_changed_people's pre-hook compared
        -- the snapshot with the table in this build
        {{ apply_snapshot_differences(part) }}
            {%- else %}
        create or replace table {{ chain_state(part) }} as
        select {{ key }}, {{ columns | join(', ') }} from {{ ref(model) }};
            {%- endif %}
        {%- endfor %}
        update {{ chain_state('state') }}
        set activity_built_by = '{{ invocation_id }}'
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook of int_person_stage_anchors, after the changed people's anchors are deleted:
    everyone else's last anchor now runs to the new as-of date, and a subscription lapse in
    the days it gained churns them from that day (as in the model: the first lapse after
    the anchor's last active day). -#}
{% macro extend_last_anchors() -%}
    {%- if target.type == 'duckdb' and is_incremental() and not everyone_changed('int_stage_changed_people') -%}
        update {{ this }} as anchors
        set lapse_date = lapses.lapse_date
        from (
            select
                anchors.user_key,
                min(lapses.lapse_date) as lapse_date
            from {{ this }} as anchors
            inner join {{ ref('int_subscription_lapses') }} as lapses
                on
                    anchors.user_key = lapses.user_key
                    and anchors.last_active_date < lapses.lapse_date
                    and lapses.lapse_date <= {{ as_of_date() }}
            where anchors.last_day = {{ chain_built_as_of() }} and anchors.lapse_date is null
            group by anchors.user_key
        ) as lapses
        where
            anchors.user_key = lapses.user_key
            and anchors.last_day = {{ chain_built_as_of() }}
            and anchors.lapse_date is null;
        update {{ this }}
        set last_day = {{ as_of_date() }}
        where last_day = {{ chain_built_as_of() }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- Post-hooks of int_person_day_stage: the milestones snapshot. -#}
{% macro chain_stage_built() -%}
    {%- if target.type == 'duckdb' -%}
        create or replace table {{ chain_state('milestones') }} as
        select user_key, {{ milestone_columns() | join(', ') }}
        from {{ ref('int_person_milestones') }};
        update {{ chain_state('state') }}
        set stage_built_by = '{{ invocation_id }}'
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- After-commit post-hooks of user_lifecycle_history: every kept interval describes the new
    as-of date (outside the build's transaction: updating rows in it makes DuckDB's commit
    rewrite them), then the state that says the chain is complete, keeping the as-of date
    this build started from (int_churn_features builds on top of it). -#}
{% macro chain_history_built() -%}
    {%- if target.type == 'duckdb' -%}
        update {{ this }}
        set as_of_date = {{ as_of_date() }}
        where as_of_date <> {{ as_of_date() }};
        update {{ chain_state('state') }}
        set
            previous_as_of_date = as_of_date,
            as_of_date = {{ as_of_date() }},
            fingerprint = '{{ chain_fingerprint() }}',
            history_built_by = '{{ invocation_id }}'
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- What the key tests on the chain's largest tables read: on a daily run, the rows this
    build rewrote and every row sharing a key with them; everything on a full build, or when
    the list of changed people is missing, not this build's or says everyone. The rows left
    out were tested when they were written and have not changed since. A test asks for it
    with a `where` of `__rebuilt_anchor_rows__`, `__rebuilt_stage_rows__`,
    `__rebuilt_activity_rows__` or `__rebuilt_event_rows__` (test configs cannot call macros;
    get_where_subquery below replaces them). The chain's state still describes its last
    complete build when these tests run (before user_lifecycle_history). All three person-day
    tables are keyed by person and day, and each test reads the days after the last build:
    int_person_stage_anchors every anchor of a person in int_stage_changed_people (an anchor
    kept for someone else is only extended: its key does not change); int_person_day_stage
    and int_person_day_activity the rows of the people whose whole history was rebuilt
    (the other listed people only gained rows after the last build). -#}
{% macro rebuilt_person_rows(relation, list_name, day_column, whole_history=false) -%}
    {%- set list = daily_list(list_name) -%}
    {%- if list is none -%}
        {{ return(relation) }}
    {%- else -%}
        {{ return('(' ~ new_days_and_people_rows(relation, day_column, rebuilt_people(list, whole_history))
                  ~ ') dbt_subquery') }}
    {%- endif -%}
{%- endmacro %}

{#- For a key test: the list of changed people `list_name` (in intermediate) when it is
    this build's and does not say everyone, so the test can read the rows the build wrote;
    none otherwise (every row is tested). -#}
{% macro daily_list(list_name) -%}
    {%- set list = intermediate_relation(list_name) -%}
    {%- if target.type != 'duckdb' or not execute
        or adapter.get_relation(target.database, 'intermediate', list_name) is none
        or list_relation_says_everyone(list) -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(list) }}
{%- endmacro %}

{#- int_events: the rows of the people whose every event was rebuilt and the rows of the
    unseen events (by their lineage), and every row sharing their event ids' hashes (a few
    more rows than that when another id shares one; key_hash). Asked while the test is
    compiled: the chain's state, which says what is unseen, exists only when the
    list is this build's and not everyone. -#}
{% macro rebuilt_event_rows_filter(relation) -%}
    {%- set list = intermediate_relation('int_changed_people') -%}
    {%- if target.type != 'duckdb' or not execute -%}
        true
    {%- else -%}
        {%- if list_relation_says_everyone(list) -%}
            true
        {%- else -%}
            {%- set keys -%}
                select rewritten._event_key from {{ relation }} as rewritten
                where rewritten.user_key in (
                    select changed.user_key from {{ list }} as changed where changed.all_events
                )
                union all
                select unseen._event_key from ({{ unseen_staged_events(relation, '_event_key') }}) as unseen
            {%- endset -%}
            {#- by row id: few rows match -#}
            {{ rows_by_key(relation, '_event_key', keys) }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{% macro intermediate_relation(name) -%}
    {{ target.database }}.intermediate.{{ name }}
{%- endmacro %}

{#- dbt's get_where_subquery, with the placeholders above. -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- if where == '__rebuilt_anchor_rows__' -%}
        {{ return(rebuilt_person_rows(relation, 'int_stage_changed_people', 'day')) }}
    {%- elif where == '__rebuilt_stage_rows__' -%}
        {{ return(rebuilt_person_rows(relation, 'int_stage_changed_people', 'day', whole_history=true)) }}
    {%- elif where == '__rebuilt_activity_rows__' -%}
        {{ return(rebuilt_person_rows(relation, 'int_changed_people', 'activity_date', whole_history=true)) }}
    {%- elif where == '__newly_staged_rows__' -%}
        {%- set where = newly_staged_rows_filter(relation) -%}
    {%- elif where == '__rebuilt_event_rows__' -%}
        {%- set where = rebuilt_event_rows_filter(relation) -%}
    {%- elif where == '__relabelled_identifier_rows__' -%}
        {%- set where = relabelled_identifier_rows_filter() -%}
    {%- elif where == '__rewritten_tuple_rows__' -%}
        {%- set where = rewritten_tuple_rows_filter() -%}
    {%- elif where == '__rebuilt_churn_feature_rows__' -%}
        {%- set where = rebuilt_churn_feature_rows_filter() -%}
    {%- elif where == '__rewritten_order_rows__' -%}
        {%- set written = orders_written() if target.type == 'duckdb' and execute else none -%}
        {%- set where = 'order_id in (select written.order_id from ' ~ written ~ ' as written)'
            if written is not none else 'true' -%}
    {%- endif -%}
    {%- if where -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {{ return(filtered) }}
    {%- else -%}
        {{ return(relation) }}
    {%- endif -%}
{%- endmacro %}
