{#- Incremental staging of raw files.

    Raw files are immutable deliveries: a daily run stages only the files it has not staged
    yet (the landing step exposes them as raw.<source>__pending), and the result equals a full
    refresh because
      * rows of a file that changed (new modification time) or disappeared are deleted first
        (pre-hook `unstage_changed_files`), and the changed file is pending again;
      * ranks across deliveries (duplicates, order versions) are recomputed for every key the
        new files touch, over the old and the new rows together (`with_earlier_rows`; the
        model's unique_key is that key, so delete+insert swaps all its rows);
      * anything that changes how every row is typed or hashed (the PII key, time zone,
        currency, phone country code, future tolerance, the engine's key hash) is in
        `_staging_fingerprint`: when it differs from the stored rows, every file is staged
        again.
    `dbt build --full-refresh` (ulm run --full-refresh) rebuilds from every file. -#}

{% macro staging_fingerprint() -%}
    md5(
        (select md5(pii_key.key) from {{ source('landing', 'pii_key') }} as pii_key)
        || '|{{ var("source_timezone") }}|{{ var("currency") }}'
        || '|{{ var("default_phone_country_code") }}|{{ var("quality_future_tolerance_hours") }}'
        {#- the engine's key hashes (see key_hash): stored rows hashed by another version of
            it are staged again -#}
        || '|' || cast({{ key_hash("'ulm'") }} as {{ dbt.type_string() }})
    )
{%- endmacro %}

{#- True when this run must read every file: first build, --full-refresh, or the fingerprint
    of the stored rows is not this run's. Every stored row carries the fingerprint of the
    last build (a build that keeps the stored rows found them all of its own fingerprint;
    one that did not staged every file again), which the log of staging builds keeps
    (log_staging_build): compared with that, not with every stored row's (two scans of a
    column of 98M rows a day at the large benchmark, one per call: the model and its
    pre-hook ask). A log without it (an older version's) leaves the scan. -#}
{% macro restage_all() -%}
    {%- if not is_incremental() -%}
        {{ return(true) }}
    {%- endif -%}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- if not has_stored_fingerprints() -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set logged = logged_fingerprint_is_current() -%}
    {%- if logged is not none -%}
        {{ return(not logged) }}
    {%- endif -%}
    {%- set stale = run_query(
        "select count(*) from (select 1 from " ~ this ~ " where _staging_fingerprint <> "
        ~ staging_fingerprint() ~ " limit 1) as stale") -%}
    {{ return(stale.columns[0].values()[0] > 0) }}
{%- endmacro %}

{#- Whether the last logged build's fingerprint is this run's; none when the log holds no
    fingerprint of the last build (no log, or a last build logged by an older version:
    arg_max_null, as arg_max would skip it for an earlier build's). -#}
{% macro logged_fingerprint_is_current() -%}
    {%- set log = staging_log_with(this.identifier ~ '__builds', 'fingerprint') -%}
    {%- if log is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set last = run_query(
        "select last.fingerprint = " ~ staging_fingerprint() ~ " from (select "
        ~ "arg_max_null(fingerprint, built_at) as fingerprint from " ~ log
        ~ ") as last").columns[0].values()[0] -%}
    {{ return(last) }}
{%- endmacro %}

{#- Whether the stored rows carry `_staging_fingerprint` (a table staged whole by an older
    version does not: it is staged again, and its build adds the column). -#}
{% macro has_stored_fingerprints() -%}
    {{ return('_staging_fingerprint' in adapter.get_columns_in_relation(this)
              | map(attribute='name') | list) }}
{%- endmacro %}

{#- The raw rows to stage, each with the fingerprint of what shapes its typing: every file
    when `restage` (restage_all(), asked once per model),
    else the files not staged yet. -#}
{% macro staged_rows(source_name, restage) -%}
    select
        raw_rows.*,
        fingerprint.value as _staging_fingerprint
    from {{ source('raw', source_name if restage else source_name ~ '__pending') }} as raw_rows
    cross join (select {{ staging_fingerprint() }} as value) as fingerprint
{%- endmacro %}

{#- The landing step's list of staged file versions that are gone, and how many of them are
    the source's (none when there is no list: parsing, or a warehouse landed by an older
    version). -#}
{% macro unstaged_files() -%}
    {{ this.database }}.landing.unstaged_files
{%- endmacro %}

{% macro unstaged_file_count(source_name) -%}
    {%- if not execute or adapter.get_relation(this.database, 'landing', 'unstaged_files') is none -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(run_query("select count(*) from " ~ unstaged_files() ~ " where source = '"
                        ~ source_name ~ "'").columns[0].values()[0]) }}
{%- endmacro %}

{#- Pre-hook: forget the rows of files that changed or left the raw dir (all rows when the
    fingerprint changed), so their current content is staged as if for the first time. The
    landing step lists the staged file versions that are gone (landing.unstaged_files): on a
    day without any, nothing is deleted and the staged rows are not scanned (14 s at 100M
    events). -#}
{% macro unstage_changed_files(source_name) -%}
    {%- set gone = unstaged_file_count(source_name) if is_incremental() else none -%}
    {%- if not is_incremental() -%}
        select 1
    {%- elif gone is none or restage_all() -%}
        delete from {{ this }}
        where {{ '_staging_fingerprint <> ' ~ staging_fingerprint() if has_stored_fingerprints() else 'true' }}
            or not exists (
                select 1
                from {{ source('landing', 'file_inventory') }} as inventory
                where
                    inventory.source = '{{ source_name }}'
                    and inventory.path = {{ this }}._file
                    and make_timestamp(inventory.mtime_ns // 1000) = {{ this }}._file_modified_at
            )
    {%- elif gone == 0 -%}
        select 1
    {%- else -%}
        delete from {{ this }}
        where exists (
            select 1
            from {{ unstaged_files() }} as gone
            where
                gone.source = '{{ source_name }}'
                and gone.path = {{ this }}._file
                and gone.modified_at = {{ this }}._file_modified_at
        )
    {%- endif -%}
{%- endmacro %}

{#- The new rows and every stored row that shares a key with them (the model's unique_key:
    delete+insert replaces all rows of those keys), so ranks are computed again over old and
    new rows together. Columns as stored, less the ones the model computes again. The new
    rows alone when every file is staged (`restage`). Incremental builds are DuckDB's only
    (rowid). -#}
{% macro with_earlier_rows(new_rows, key, computed_columns, restage) -%}
    {%- if restage -%}
        select * from {{ new_rows }}
    {%- else -%}
        {%- set columns = adapter.get_columns_in_relation(this) | map(attribute='name')
            | reject('in', computed_columns) | join(', ') -%}
        select {{ columns }} from {{ new_rows }}
        union all
        -- by row id (rows_by_key): the semi-join on the key fetched every column of 339k
        -- of 100M events on the benchmark's next day, none of them a match (3.9 -> 0.9 s)
        select {{ columns }}
        from {{ this }}
        where {{ rows_by_key(this, key, 'select new_rows.' ~ key ~ ' from ' ~ new_rows ~ ' as new_rows') }}
    {%- endif -%}
{%- endmacro %}

{#- `where` of the rows of `relation` whose `key` is among `keys` (a query), by their row ids
    found by a scan of the key column alone (DuckDB). Where few rows match, this costs far
    less than the semi-join on the key itself, which makes every row the scan's filter cannot
    rule out fetch the other columns read; where many match (a tenth of the table), fetching
    by row id costs more. -#}
{% macro rows_by_key(relation, key, keys) -%}
    rowid in (select keyed.rowid from {{ relation }} as keyed where keyed.{{ key }} in ({{ keys }}))
{%- endmacro %}

{#- `_staging_run in (...)` of the given runs, as constants (DuckDB skips row groups by
    their min/max); false for none. -#}
{% macro runs_condition(runs) -%}
    {%- if runs | length == 0 -%}
        false
    {%- else -%}
        _staging_run in ({% for run in runs %}'{{ run }}'{{ ', ' if not loop.last }}{% endfor %})
    {%- endif -%}
{%- endmacro %}

{#- Which dbt invocation wrote a row: the rows a build inserted are the ones its post-hook
    ranks. -#}
{% macro staging_run() -%}
    '{{ invocation_id }}'
{%- endmacro %}

{#- Rank of a valid row among the deliveries of its key (1 = the first delivery, in
    `order_by` order); null for rejected rows.

    On DuckDB the statement writes 1 and the post-hook `rank_redeliveries` ranks the few keys
    delivered more than once: a window over every row sorts the whole wide table (at 100M
    events half the staging time), where a grouped count of the keys is cheap. Elsewhere
    (Spark tables cannot be updated without Delta) the window ranks every row. -#}
{% macro redelivery_rank(key, order_by) -%}
    {%- if target.type == 'duckdb' -%}
        case when reject_reason is null then 1 end
    {%- else -%}
        case
            when reject_reason is null
                then row_number() over (
                    partition by {{ key }}, reject_reason is null order by {{ order_by }}
                )
        end
    {%- endif -%}
{%- endmacro %}

{#- Ranking runs after the build's commit: an UPDATE of rows that the same transaction
    created makes DuckDB's commit rewrite them (5.9 s of a 21 s build at 10M events, the CTAS
    itself 12.8 s; 0.1 s once committed). So the build's transaction only notes its run as
    unranked (`note_unranked_run`, a one-row insert), and `rank_redeliveries` ranks after the
    commit every row of a noted run and forgets the note in one transaction: a ranking that
    failed or never ran is done by the next build. -#}
{% macro unranked_runs() -%}
    {{ this.database }}.{{ this.schema }}.{{ this.identifier }}__unranked_runs
{%- endmacro %}

{#- Whether this build's pre-hook may have deleted rows of a key that keeps other rows (a
    file withdrawn or rewritten; or the full check, which cannot tell), so that a key's first
    delivery may be gone and its next copy must become first. -#}
{% macro staged_rows_may_have_left(source_name) -%}
    {%- set gone = unstaged_file_count(source_name) -%}
    {{ return(gone is none or gone > 0) }}
{%- endmacro %}

{#- Transactional post-hook: this build's rows are not ranked yet, and whether it deleted
    rows of files that are gone (a column added to notes of older versions, as true). -#}
{% macro note_unranked_run(source_name) -%}
    {%- if target.type == 'duckdb' -%}
        create table if not exists {{ unranked_runs() }} (_staging_run varchar, rows_left boolean);
        alter table {{ unranked_runs() }} add column if not exists rows_left boolean default true;
        insert into {{ unranked_runs() }}
        values ({{ staging_run() }}, {{ staged_rows_may_have_left(source_name) }})
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- The log of staging builds (post-hook, in the build's transaction). The rows a build
    wrote carry its run as `_staging_run` (new rows and the earlier rows of the keys it
    touched; a full build stamps every row), so the log says which rows are new to whom:
    the events and orders GX suites validate the newest build's rows instead of a sample of
    every row ever staged (orchestration/quality_checks.py), and the lifecycle chain reads
    the rows of the events builds it has not seen (macros/changed_people.sql). `rows_left`:
    whether the build may have removed staged rows other than by rewriting them (files
    gone, or everything staged again, when a row may stage differently); when none of the
    builds it has not seen did, the chain need not look for built rows whose staged row is
    gone (a log of an older version gains the column as true). -#}
{% macro staging_builds() -%}
    {{ this.database }}.{{ this.schema }}.{{ this.identifier }}__builds
{%- endmacro %}

{#- Asked after the build (the stored fingerprints are this run's by then): a first or full
    build, files gone, or every row staged again by this build (a changed fingerprint
    deletes every row first; a row group whose rows all carry this run is skipped by its
    min/max, so a daily build stops at its first older row). -#}
{% macro staging_build_removed_rows(source_name) -%}
    {%- if not execute or not is_incremental() or staged_rows_may_have_left(source_name) -%}
        {{ return(true) }}
    {%- endif -%}
    {%- set older = run_query(
        "select count(*) from (select 1 from " ~ this ~ " where _staging_run <> "
        ~ staging_run() ~ " limit 1) as older") -%}
    {{ return(older.columns[0].values()[0] == 0) }}
{%- endmacro %}

{#- A source's log of staging builds (`staging.stg_<source>__all__builds`, with
    `rows_left` and the build's `fingerprint`), or none (a warehouse staged by an older
    version). Asked of the database, as the staging build that creates it may be this
    invocation's: dbt's cache of relations does not know it then. -#}
{% macro staging_build_log(source_name) -%}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(staging_log_with('stg_' ~ source_name ~ '__all__builds', 'rows_left')) }}
{%- endmacro %}

{#- The staging log `table` when it has `column` (an older version's log may lack it), or
    none; asked of the database (see above). -#}
{% macro staging_log_with(table, column) -%}
    {%- set found = run_query(
        "select count(*) from information_schema.columns where table_catalog = '" ~ target.database
        ~ "' and table_schema = 'staging' and table_name = '" ~ table ~ "'"
        ~ " and column_name = '" ~ column ~ "'").columns[0].values()[0] -%}
    {{ return(target.database ~ '.staging.' ~ table if found else none) }}
{%- endmacro %}

{% macro log_staging_build(source_name) -%}
    {%- if target.type == 'duckdb' -%}
        create table if not exists {{ staging_builds() }} (
            _staging_run varchar, built_at timestamp with time zone, rows_left boolean
        );
        alter table {{ staging_builds() }} add column if not exists rows_left boolean default true;
        alter table {{ staging_builds() }} add column if not exists fingerprint varchar;
        insert into {{ staging_builds() }} (_staging_run, built_at, rows_left, fingerprint)
        select
            {{ staging_run() }}, current_timestamp, {{ staging_build_removed_rows(source_name) }},
            {{ staging_fingerprint() }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- After-commit post-hook (DuckDB): the true rank of every valid row of a key that an
    unranked build touched and that has more than one valid row, or, when an unranked build
    deleted rows of gone files, that has a row ranked after the first (its first delivery
    may have left with a withdrawn or rewritten file: the copy left behind is the first
    now). A key's ranks change only when its rows do. Every row of a key that a build touched
    carries that build's `_staging_run` (`with_earlier_rows` stamps the earlier rows it
    rewrites), so the touched keys' rows are found by that narrow column, not by probing
    every key: at 100M events this took 10.8 s a day reading every key ever redelivered and
    probing all keys, 9.0 s without the first. rowid breaks ties the same way in every
    evaluation (two copies of an event in one CSV or JSON file have no row number). A
    re-ranked row is stamped with this build's `_staging_run`: it is new to the person-level
    models (macros/changed_people.sql). -#}
{% macro rank_redeliveries(key, rank_column, order_by) -%}
    {%- if target.type == 'duckdb' -%}
        {%- set rows_left = not execute or run_query(
            "select coalesce(bool_or(rows_left), false) from " ~ unranked_runs()
        ).columns[0].values()[0] -%}
        {#- the unranked runs as constants: a semi-join with the notes probed every row's run
            (53.6 s of a full build at 100M events, where every row is unranked; 4.4 -> 1.7 s
            at 10M), a constant list skips the row groups of other runs by their min/max -#}
        {%- set runs = [] if not execute else run_query(
            "select distinct _staging_run from " ~ unranked_runs() ~ " order by 1"
        ).columns[0].values() -%}
        {%- set unranked_rows -%}
            reject_reason is null and _staging_run in ({{ sql_list(runs) if runs else 'null' }})
        {%- endset -%}
        begin;
        update {{ this }} as target
        set {{ rank_column }} = ranked.rank, _staging_run = {{ staging_run() }}
        from (
            select
                rowid as row_id,
                row_number() over (partition by {{ key }} order by {{ order_by }}, rowid) as rank
            from {{ this }}
            where
                {{ 'reject_reason is null' if rows_left else unranked_rows }}
                and {{ key }} in (
                    select {{ key }} from {{ this }} where {{ unranked_rows }}
                    group by {{ key }} having count(*) > 1
                    {%- if rows_left %}
                        union
                        select {{ key }} from {{ this }} where {{ rank_column }} > 1
                    {%- endif %}
                )
        ) as ranked
        where target.rowid = ranked.row_id and target.{{ rank_column }} <> ranked.rank;
        delete from {{ unranked_runs() }};
        commit
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- `where` of the key and not-null tests of stg_events and stg_orders on a daily run (a
    `where` of `__newly_staged_rows__`): the rows of the keys this staging build wrote or
    re-ranked, which are the rows carrying its invocation as `_staging_run` (it stamps every
    row of a key it touches; see rank_redeliveries and with_earlier_rows), so a test reads
    that narrow column instead of probing every key (6.9 s at 100M events for the key; the
    not-null tests of stg_events read 100M rows each, 0.1-1.9 s). The rows of other keys were
    tested when staged and have not changed. A full build stamps every row, so it tests
    every row; a test run on its own (no row of its invocation) tests every row too. -#}
{% macro newly_staged_rows_filter(relation) -%}
    {%- if target.type != 'duckdb' or not execute -%}
        true
    {%- else -%}
        {%- set stamped = run_query("select count(*) from (select 1 from " ~ relation
            ~ " where _staging_run = '" ~ invocation_id ~ "' limit 1) as stamped") -%}
        {%- if stamped.columns[0].values()[0] == 0 -%}
            true
        {%- else -%}
            _staging_run = '{{ invocation_id }}'
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
