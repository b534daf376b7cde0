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

{#- Post-hook of int_identity_map: what the next build compares with. The snapshot of the
    edges takes the day's added and gone edges (a copy of all of them, ~4M at a million
    people, cost ~1 s a day), or is copied whole when everyone was relabelled. -#}
{% macro identity_map_built() -%}
    {%- if target.type == 'duckdb' -%}
        {%- if identity_relabel_reason() %}
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
            '{{ invocation_id }}' as built_by
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
