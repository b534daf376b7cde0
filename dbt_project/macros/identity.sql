{#- The key of a row's identifier combination, used to look up its person in
    int_identity_tuples with one equality join instead of four. -#}
{% macro identity_tuple_key(user_id, anonymous_id, email_hash, phone_hash) -%}
    coalesce({{ user_id }}, '') || chr(31) || coalesce({{ anonymous_id }}, '') || chr(31)
    || coalesce({{ email_hash }}, '') || chr(31) || coalesce({{ phone_hash }}, '')
{%- endmacro %}

{#- A 64-bit hash of the same four identifiers, equal for equal tuple keys (empty and null
    alike): a cheap pre-filter, never a key. -#}
{% macro identity_tuple_hash(user_id, anonymous_id, email_hash, phone_hash) -%}
    hash(
        coalesce({{ user_id }}, ''), coalesce({{ anonymous_id }}, ''), coalesce({{ email_hash }}, ''),
        coalesce({{ phone_hash }}, '')
    )
{%- endmacro %}

{#- Join a staged relation (alias) to its person and leave out erased people: the
    `from <alias>` of every intermediate model that attaches user_key to source rows. -#}
{% macro join_person(alias) -%}
    inner join {{ ref('int_identity_tuples') }} as tuples
        on
            {{ identity_tuple_key(
                alias ~ '.user_id', alias ~ '.anonymous_id', alias ~ '.email_hash', alias ~ '.phone_hash'
            ) }}
            = tuples.tuple_key
    where tuples.user_key not in (select erased.user_key from {{ ref('int_erased_users') }} as erased)
{%- endmacro %}

{#- Daily builds of int_identity_map (DuckDB): relabel only the components the day touched.

    A component of the last build whose identifiers and edges are all unchanged is still a
    component, with the same earliest-seen identifier, so its people keep their user_key.
    An identifier is changed when it is new, gone, or its type, first sighting or shared
    flag moved; an edge when it is new or gone (against a snapshot of int_identity_edges
    taken by the last build). The components of the last build holding a changed
    identifier, plus the new identifiers, are closed under the current edges (an edge
    leaving them would be a changed edge or an edge of an untouched component), so their
    connected components are computed alone and everyone else's rows are kept. Everyone is
    relabelled on a full refresh, a first build, a new pii key (user_key is a keyed hash),
    or a changed int_identity_map. -#}

{% macro identity_map_state(part) -%}
    {{ intermediate_relation('int_identity_map_' ~ part) }}
{%- endmacro %}

{% macro identity_map_fingerprint() -%}
    {{ return(fingerprint([], ['int_identity_map'])) }}
{%- endmacro %}

{#- Why every identifier must be relabelled ('' when only the touched components are);
    asked on DuckDB only (logged_rebuild_reason). -#}
{% macro identity_relabel_reason() -%}
    {%- if flags.FULL_REFRESH -%}
        {{ return('full refresh') }}
    {%- endif -%}
    {%- for table in ['int_identity_map', 'int_identity_map_state', 'int_identity_map_edges'] -%}
        {%- if adapter.get_relation(this.database, 'intermediate', table) is none -%}
            {{ return('no intermediate.' ~ table ~ ' yet') }}
        {%- endif -%}
    {%- endfor -%}
    {%- set state = run_query(
        "select fingerprint, key_digest = (select md5(pii_key.key) from "
        ~ source('landing', 'pii_key') ~ " as pii_key) as same_key from "
        ~ identity_map_state('state')) -%}
    {%- if state.rows | length != 1 -%}
        {{ return('no identity map state') }}
    {%- endif -%}
    {%- if state.rows[0]['fingerprint'] != identity_map_fingerprint() -%}
        {{ return('int_identity_map changed') }}
    {%- endif -%}
    {%- if not state.rows[0]['same_key'] -%}
        {{ return('a new pii key') }}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}

{#- While building int_identity_map: the work table of the identifiers to relabel
    (identity_work.relabel, with identity_work.relabelled_keys: the last build's people
    among them), or '' when everyone is relabelled. Compiling alone renders the full build. -#}
{% macro identity_relabel_scope() -%}
    {%- if not (execute and flags.WHICH in ('run', 'build')) -%}
        {{ return('') }}
    {%- endif -%}
    {%- if logged_rebuild_reason(identity_relabel_reason) -%}
        {{ return('') }}
    {%- endif -%}
    {%- set nodes = ref('int_identity_nodes') -%}
    {%- set edges = ref('int_identity_edges') -%}
    {%- set built_edges = identity_map_state('edges') -%}
    {% do run_query('create schema if not exists identity_work') %}
    {#- the edges added and gone since the last build (the post-hook applies them to its
        snapshot instead of copying every edge again) -#}
    {% do replace_work_table('identity_work.edge_changes',
        'select src, dst, true as is_added from ('
        ~ 'select src, dst from ' ~ edges ~ ' except select src, dst from ' ~ built_edges ~ ') as added '
        ~ 'union all '
        ~ 'select src, dst, false as is_added from ('
        ~ 'select src, dst from ' ~ built_edges ~ ' except select src, dst from ' ~ edges ~ ') as gone'
    ) %}
    {% do replace_work_table('identity_work.changed_nodes',
        'select coalesce(nodes.node_id, built.node_id) as node_id from ' ~ nodes ~ ' as nodes '
        ~ 'full outer join ' ~ this ~ ' as built on nodes.node_id = built.node_id '
        ~ 'where nodes.node_id is null or built.node_id is null '
        ~ 'or nodes.node_type is distinct from built.node_type '
        ~ 'or nodes.first_seen_at is distinct from built.first_seen_at '
        ~ 'or nodes.is_shared is distinct from built.is_shared '
        ~ 'union select unnest([src, dst]) from identity_work.edge_changes'
    ) %}
    {% do replace_work_table('identity_work.relabelled_keys',
        'select distinct built.user_key from ' ~ this ~ ' as built '
        ~ 'inner join identity_work.changed_nodes as changed on built.node_id = changed.node_id'
    ) %}
    {% do replace_work_table('identity_work.relabel',
        'select nodes.node_id from ' ~ nodes ~ ' as nodes '
        ~ 'where nodes.node_id in (select changed.node_id from identity_work.changed_nodes as changed) '
        ~ 'or nodes.node_id in (select built.node_id from ' ~ this ~ ' as built '
        ~ 'where built.user_key in (select keys.user_key from identity_work.relabelled_keys as keys))'
    ) %}
    {%- set counts = run_query(
        'select (select count(*) from identity_work.relabel), (select count(*) from ' ~ nodes ~ ')'
    ).rows[0] -%}
    {{ log('identity graph: relabelling ' ~ counts[0] ~ ' of ' ~ counts[1]
           ~ ' identifiers (the components the new data touched)', info=true) }}
    {{ return('identity_work.relabel') }}
{%- endmacro %}

{#- Pre-hook of int_identity_map: delete the rows of the people about to be relabelled (the
    work tables identity_relabel_scope wrote while the model compiled), or every row when
    everyone is. -#}
{% macro forget_relabelled_identifiers() -%}
    {%- if target.type == 'duckdb' and is_incremental() -%}
        delete from {{ this }}
        {%- if not identity_relabel_reason() %}
            where user_key in (select keys.user_key from identity_work.relabelled_keys as keys)
        {%- endif -%}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- The dbt invocation that wrote a state table of the intermediate schema (`built_by`), or
    none without one. -#}
{% macro stored_built_by(table) -%}
    {%- set row = state_row(table) -%}
    {{ return(row['built_by'] if row is not none else none) }}
{%- endmacro %}

{#- The one row of a state table of the intermediate schema (DuckDB), or none: no table, no
    single row, or parsing. -#}
{% macro state_row(table) -%}
    {%- if target.type != 'duckdb' or not execute
        or adapter.get_relation(target.database, 'intermediate', table) is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set found = run_query("select * from " ~ intermediate_relation(table)) -%}
    {{ return(found.rows[0] if found.rows | length == 1 else none) }}
{%- endmacro %}

{#- Post-hook of int_identity_map: what the next build compares with. The snapshot of the
    edges takes the day's added and gone edges (a copy of all of them, ~4M at a million
    people, cost ~1 s a day), or is copied whole when everyone was relabelled. The state
    says which build this was, the build before it (int_identity_tuples checks it was built
    on top of that one) and whether it relabelled everyone. -#}
{% macro identity_map_built() -%}
    {%- if target.type == 'duckdb' -%}
        {%- set everyone = identity_relabel_reason() != '' -%}
        {%- set previous = stored_built_by('int_identity_map_state') -%}
        {%- if everyone %}
        create or replace table {{ identity_map_state('edges') }} as
        select src, dst from {{ ref('int_identity_edges') }};
        {%- else %}
        delete from {{ identity_map_state('edges') }} as built
        using identity_work.edge_changes as gone
        where not gone.is_added and built.src = gone.src and built.dst = gone.dst;
        insert into {{ identity_map_state('edges') }} (src, dst)
        select src, dst from identity_work.edge_changes where is_added;
        {%- endif %}
        create or replace table {{ identity_map_state('state') }} as
        select
            '{{ identity_map_fingerprint() }}' as fingerprint,
            (select md5(pii_key.key) from {{ source('landing', 'pii_key') }} as pii_key) as key_digest,
            '{{ invocation_id }}' as built_by,
            cast({{ "'" ~ previous ~ "'" if previous else 'null' }} as varchar) as previous_built_by,
            {{ 'true' if everyone else 'false' }} as relabelled_everyone
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- Daily builds of int_identity_tuples (DuckDB). A combination's person depends only on the
    identity map's rows of its identifiers, so the build writes the combinations that are
    new or hold an identifier the map relabelled this invocation (identity_work.relabel) or
    changed (identity_work.changed_nodes: new, gone or moved), and deletes those and the
    combinations no longer seen. Every combination is written again on a first build, a full
    refresh, a changed int_identity_tuples, when the map relabelled everyone or was not
    built by this invocation, or when the last build of int_identity_tuples was not on top
    of the map's previous build (a failed or skipped build in between). -#}

{% macro identity_tuples_state() -%}
    {{ intermediate_relation('int_identity_tuples_state') }}
{%- endmacro %}

{% macro identity_tuple_changes() -%}
    identity_work.tuple_changes
{%- endmacro %}

{% macro identity_tuples_fingerprint() -%}
    {{ return(fingerprint([], ['int_identity_tuples'])) }}
{%- endmacro %}

{#- Why int_identity_tuples writes every combination ('' when only the changed ones). -#}
{% macro identity_tuples_rebuild_reason() -%}
    {%- set first = first_build_reason([
        'intermediate.int_identity_tuples', 'intermediate.int_identity_tuples_state',
        'intermediate.int_identity_map_state']) -%}
    {%- if first -%}
        {{ return(first) }}
    {%- endif -%}
    {%- set map = state_row('int_identity_map_state') -%}
    {%- set built = state_row('int_identity_tuples_state') -%}
    {%- if map is none or 'relabelled_everyone' not in map.keys() -%}
        {{ return('no identity map state of this version') }}
    {%- endif -%}
    {%- if map['built_by'] != invocation_id or map['relabelled_everyone'] -%}
        {{ return('the identity map relabelled everyone, or was not built now') }}
    {%- endif -%}
    {%- if built is none or built.get('fingerprint') != identity_tuples_fingerprint() -%}
        {{ return('int_identity_tuples changed') }}
    {%- endif -%}
    {%- if built.get('map_built_by') != map['previous_built_by'] -%}
        {{ return("its last build was not on top of the identity map's previous build") }}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}

{#- True when this build of int_identity_tuples writes only the changed combinations; the
    model asks with `logged` (the reason is logged once). -#}
{% macro identity_tuples_daily(logged=false) -%}
    {%- if target.type != 'duckdb' or not execute or not is_incremental() -%}
        {{ return(false) }}
    {%- endif -%}
    {{ return(not (logged_rebuild_reason(identity_tuples_rebuild_reason) if logged
                   else identity_tuples_rebuild_reason())) }}
{%- endmacro %}

{#- Pre-hook of int_identity_tuples: on a daily build, the work table of the combinations to
    write (`is_current`, with their identifiers) or delete (`was_built`), then the delete;
    otherwise delete every row. One full outer join of the combinations seen and built (5M
    each at a million people) finds the new and the gone ones. -#}
{% macro forget_changed_tuples() -%}
    {%- if target.type == 'duckdb' and is_incremental() -%}
        {%- if identity_tuples_daily() -%}
            {%- set affected -%}
                (select relabel.node_id from identity_work.relabel as relabel
                 union select changed.node_id from identity_work.changed_nodes as changed)
            {%- endset -%}
            {% do replace_work_table(identity_tuple_changes(),
                'select coalesce(seen.tuple_key, built.tuple_key) as tuple_key, '
                ~ 'seen.user_node, seen.anonymous_node, seen.email_node, seen.phone_node, '
                ~ 'seen.tuple_key is not null as is_current, built.tuple_key is not null as was_built '
                ~ 'from (select ' ~ identity_tuple_key(
                    "substr(user_node, 3)", "substr(anonymous_node, 3)",
                    "substr(email_node, 3)", "substr(phone_node, 3)")
                ~ ' as tuple_key, user_node, anonymous_node, email_node, phone_node from '
                ~ ref('int_identifier_sightings') ~ ') as seen '
                ~ 'full outer join ' ~ this ~ ' as built on seen.tuple_key = built.tuple_key '
                ~ 'where seen.tuple_key is null or built.tuple_key is null '
                ~ 'or seen.user_node in ' ~ affected ~ ' or seen.anonymous_node in ' ~ affected
                ~ ' or seen.email_node in ' ~ affected ~ ' or seen.phone_node in ' ~ affected
            ) %}
            {%- set counts = run_query(
                'select count(*) filter (where is_current), count(*) filter (where not is_current) from '
                ~ identity_tuple_changes()).rows[0] -%}
            {{ log('identity tuples: writing ' ~ counts[0] ~ ' combinations (new or relabelled), '
                   ~ 'deleting ' ~ counts[1] ~ ' no longer seen', info=true) }}
            delete from {{ this }}
            where tuple_key in (
                select changed.tuple_key from {{ identity_tuple_changes() }} as changed
                where changed.was_built
            )
        {%- else -%}
            delete from {{ this }}
        {%- endif -%}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- Post-hook of int_identity_tuples: which build of the identity map it is on top of, the
    build of int_identity_tuples before it (int_changed_people compares only the written
    combinations when that one was the chain's last complete build), and whether it wrote
    every combination. -#}
{% macro identity_tuples_built() -%}
    {%- if target.type == 'duckdb' -%}
        {%- set previous = stored_built_by('int_identity_tuples_state') -%}
        create or replace table {{ identity_tuples_state() }} as
        select
            '{{ identity_tuples_fingerprint() }}' as fingerprint,
            (select map_state.built_by from {{ identity_map_state('state') }} as map_state) as map_built_by,
            '{{ invocation_id }}' as built_by,
            cast({{ "'" ~ previous ~ "'" if previous else 'null' }} as varchar) as previous_built_by,
            {{ 'false' if identity_tuples_daily() else 'true' }} as wrote_everything
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- What the key tests of int_identity_map and int_identity_tuples read (get_where_subquery):
    on a daily build of this invocation, the rows it wrote, with any other row sharing their
    key; every row otherwise. The rows left out were tested when they were written. -#}
{% macro relabelled_identifier_rows_filter() -%}
    {%- set built = state_row('int_identity_map_state') -%}
    {%- if built is not none and built.get('built_by') == invocation_id
        and built.get('relabelled_everyone') == false -%}
        {{ return('node_id in (select relabel.node_id from identity_work.relabel as relabel)') }}
    {%- endif -%}
    {{ return('true') }}
{%- endmacro %}

{% macro rewritten_tuple_rows_filter() -%}
    {%- set built = state_row('int_identity_tuples_state') -%}
    {%- if built is not none and built.get('built_by') == invocation_id
        and built.get('wrote_everything') == false -%}
        {{ return('tuple_key in (select changed.tuple_key from ' ~ identity_tuple_changes()
                  ~ ' as changed where changed.is_current)') }}
    {%- endif -%}
    {{ return('true') }}
{%- endmacro %}
