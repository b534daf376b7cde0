{#- The few places where DuckDB and Spark SQL spell the same thing differently. The models
    call these; `default__` is DuckDB (the warehouse ULM ships with), `spark__` is the
    dbt-spark target (`--target spark`, see README "Scaling out"). -#}

{% macro sha256_hex(expr) -%}
    {{ return(adapter.dispatch('sha256_hex')(expr)) }}
{%- endmacro %}
{% macro default__sha256_hex(expr) -%}
    sha256({{ expr }})
{%- endmacro %}
{% macro spark__sha256_hex(expr) -%}
    sha2({{ expr }}, 256)
{%- endmacro %}

{#- Every match replaced (DuckDB needs the 'g' flag; Spark always replaces all). -#}
{% macro regexp_replace_all(expr, pattern, replacement) -%}
    {{ return(adapter.dispatch('regexp_replace_all')(expr, pattern, replacement)) }}
{%- endmacro %}
{% macro default__regexp_replace_all(expr, pattern, replacement) -%}
    regexp_replace({{ expr }}, '{{ pattern }}', '{{ replacement }}', 'g')
{%- endmacro %}
{% macro spark__regexp_replace_all(expr, pattern, replacement) -%}
    regexp_replace({{ expr }}, '{{ pattern }}', '{{ replacement }}')
{%- endmacro %}

{#- Leading characters removed (Spark's two-argument ltrim takes them first). -#}
{% macro ltrim_chars(expr, chars) -%}
    {{ return(adapter.dispatch('ltrim_chars')(expr, chars)) }}
{%- endmacro %}
{% macro default__ltrim_chars(expr, chars) -%}
    ltrim({{ expr }}, '{{ chars }}')
{%- endmacro %}
{% macro spark__ltrim_chars(expr, chars) -%}
    trim(leading '{{ chars }}' from {{ expr }})
{%- endmacro %}

{#- Does the text end in a UTC offset (Z, +08:00, -0500, +00)? -#}
{% macro has_utc_offset(expr) -%}
    {{ return(adapter.dispatch('has_utc_offset')(expr)) }}
{%- endmacro %}
{% macro default__has_utc_offset(expr) -%}
    regexp_matches({{ expr }}, '(Z|z|[+-]\d{2}(:?\d{2})?)$')
{%- endmacro %}
{% macro spark__has_utc_offset(expr) -%}
    {{ expr }} rlike '(Z|z|[+-]\\d{2}(:?\\d{2})?)$'
{%- endmacro %}

{#- Text with an offset, as the UTC instant it names; null when unreadable. -#}
{% macro offset_text_to_utc(expr) -%}
    {{ return(adapter.dispatch('offset_text_to_utc')(expr)) }}
{%- endmacro %}
{% macro default__offset_text_to_utc(expr) -%}
    timezone('UTC', try_cast({{ expr }} as timestamptz))
{%- endmacro %}
{% macro spark__offset_text_to_utc(expr) -%}
    {#- the session time zone is UTC (profile), so the instant reads as UTC wall time -#}
    try_cast({{ expr }} as timestamp)
{%- endmacro %}

{#- A wall-clock time in time zone `tz` as UTC (and back). -#}
{% macro local_to_utc(expr, tz) -%}
    {{ return(adapter.dispatch('local_to_utc')(expr, tz)) }}
{%- endmacro %}
{% macro default__local_to_utc(expr, tz) -%}
    timezone('UTC', timezone('{{ tz }}', {{ expr }}))
{%- endmacro %}
{% macro spark__local_to_utc(expr, tz) -%}
    to_utc_timestamp({{ expr }}, '{{ tz }}')
{%- endmacro %}

{% macro utc_to_local(expr, tz) -%}
    {{ return(adapter.dispatch('utc_to_local')(expr, tz)) }}
{%- endmacro %}
{% macro default__utc_to_local(expr, tz) -%}
    timezone('{{ tz }}', timezone('UTC', {{ expr }}))
{%- endmacro %}
{% macro spark__utc_to_local(expr, tz) -%}
    from_utc_timestamp({{ expr }}, '{{ tz }}')
{%- endmacro %}

{#- Event properties: the declared JSON object merged over the unknown extra columns
    (already a JSON object); null when the declared text is not a JSON object. -#}
{% macro merged_properties(properties, extra) -%}
    {{ return(adapter.dispatch('merged_properties')(properties, extra)) }}
{%- endmacro %}
{% macro default__merged_properties(properties, extra) -%}
    case
        when {{ clean_text(properties) }} is null then {{ extra }}
        when json_valid({{ properties }}) and json_type({{ properties }}::json) = 'OBJECT'
            then (json_merge_patch(coalesce({{ extra }}, '{}'), {{ properties }}))::varchar
    end
{%- endmacro %}
{% macro spark__merged_properties(properties, extra) -%}
    case
        when {{ clean_text(properties) }} is null then {{ extra }}
        when from_json({{ properties }}, 'map<string,string>') is null then null
        when {{ extra }} is null then {{ properties }}
        else to_json(map_concat(
            from_json({{ extra }}, 'map<string,string>'),
            from_json({{ properties }}, 'map<string,string>')
        ))
    end
{%- endmacro %}

{#- Replace a work table with the result of a query (connected components' rounds). Spark
    tables without Delta cannot be replaced in one statement. -#}
{% macro replace_work_table(name, sql) -%}
    {{ return(adapter.dispatch('replace_work_table')(name, sql)) }}
{%- endmacro %}
{% macro default__replace_work_table(name, sql) -%}
    {% do run_query('create or replace table ' ~ name ~ ' as ' ~ sql) %}
{%- endmacro %}
{% macro spark__replace_work_table(name, sql) -%}
    {#- materialise first: the query may read the table it replaces -#}
    {% do run_query('drop table if exists ' ~ name ~ '__new') %}
    {% do run_query('create table ' ~ name ~ '__new using parquet as ' ~ sql) %}
    {% do run_query('drop table if exists ' ~ name) %}
    {% do run_query('alter table ' ~ name ~ '__new rename to ' ~ name) %}
{%- endmacro %}

{#- The value on the row with the smallest key, per group. -#}
{% macro value_at_min(value, key) -%}
    {{ return(adapter.dispatch('value_at_min')(value, key)) }}
{%- endmacro %}
{% macro default__value_at_min(value, key) -%}
    arg_min({{ value }}, {{ key }})
{%- endmacro %}
{% macro spark__value_at_min(value, key) -%}
    min_by({{ value }}, {{ key }})
{%- endmacro %}

{#- The value on the row with the largest key, per group. -#}
{% macro value_at_max(value, key) -%}
    {{ return(adapter.dispatch('value_at_max')(value, key)) }}
{%- endmacro %}
{% macro default__value_at_max(value, key) -%}
    arg_max({{ value }}, {{ key }})
{%- endmacro %}
{% macro spark__value_at_max(value, key) -%}
    max_by({{ value }}, {{ key }})
{%- endmacro %}

{#- A row of values that compares column by column (a key for value_at_max/min that breaks
    ties). -#}
{% macro ordering_key(columns) -%}
    {{ return(adapter.dispatch('ordering_key')(columns)) }}
{%- endmacro %}
{% macro default__ordering_key(columns) -%}
    row({{ columns | join(', ') }})
{%- endmacro %}
{% macro spark__ordering_key(columns) -%}
    struct({{ columns | join(', ') }})
{%- endmacro %}

{#- A timestamp as text that sorts like the timestamp (to the second). -#}
{% macro sortable_timestamp(expr) -%}
    {{ return(adapter.dispatch('sortable_timestamp')(expr)) }}
{%- endmacro %}
{% macro default__sortable_timestamp(expr) -%}
    strftime({{ expr }}, '%Y%m%d%H%M%S')
{%- endmacro %}
{% macro spark__sortable_timestamp(expr) -%}
    date_format({{ expr }}, 'yyyyMMddHHmmss')
{%- endmacro %}

{#- A scalar at a JSON path, as text (null when absent or not JSON). -#}
{% macro json_text(expr, path) -%}
    {{ return(adapter.dispatch('json_text')(expr, path)) }}
{%- endmacro %}
{% macro default__json_text(expr, path) -%}
    json_extract_string({{ expr }}, '{{ path }}')
{%- endmacro %}
{% macro spark__json_text(expr, path) -%}
    get_json_object({{ expr }}, '{{ path }}')
{%- endmacro %}

{#- FROM-clause: each row of `relation` once per day from start_date to end_date, the day
    in column `<alias>.day` (a date). -#}
{% macro each_day(relation, start_date, end_date, alias) -%}
    {{ return(adapter.dispatch('each_day')(relation, start_date, end_date, alias)) }}
{%- endmacro %}
{% macro default__each_day(relation, start_date, end_date, alias) -%}
    {{ relation }},
        lateral (
            select cast(unnest(generate_series(
                cast({{ start_date }} as timestamp),
                cast({{ end_date }} as timestamp),
                interval 1 day
            )) as date) as day
        ) as {{ alias }}
{%- endmacro %}
{% macro spark__each_day(relation, start_date, end_date, alias) -%}
    {{ relation }}
        lateral view explode(sequence({{ start_date }}, {{ end_date }}, interval 1 day)) {{ alias }} as day
{%- endmacro %}

{#- Whole days from date a to date b (b - a). -#}
{% macro days_between(a, b) -%}
    {{ return(adapter.dispatch('days_between')(a, b)) }}
{%- endmacro %}
{% macro default__days_between(a, b) -%}
    ({{ b }} - {{ a }})
{%- endmacro %}
{% macro spark__days_between(a, b) -%}
    datediff({{ b }}, {{ a }})
{%- endmacro %}

{#- 2^n as a 64-bit integer, and whether bit n of an integer is set (bit masks of periods). -#}
{% macro shift_one_left(n) -%}
    {{ return(adapter.dispatch('shift_one_left')(n)) }}
{%- endmacro %}
{% macro default__shift_one_left(n) -%}
    (cast(1 as bigint) << ({{ n }}))
{%- endmacro %}
{% macro spark__shift_one_left(n) -%}
    shiftleft(cast(1 as bigint), {{ n }})
{%- endmacro %}

{% macro bit_is_set(mask, n) -%}
    {{ return(adapter.dispatch('bit_is_set')(mask, n)) }}
{%- endmacro %}
{% macro default__bit_is_set(mask, n) -%}
    ((({{ mask }}) >> ({{ n }})) & 1) = 1
{%- endmacro %}
{% macro spark__bit_is_set(mask, n) -%}
    (shiftright({{ mask }}, {{ n }}) & 1) = 1
{%- endmacro %}

{#- A 64-bit hash of a key (null for a null key), stored beside a long text key so that the
    daily lookups of a few hundred thousand new keys among 100M stored rows probe integers
    instead of strings (0.3 s against 2.3 s a lookup at the large benchmark). Equal keys
    hash equally; two different keys may (very rarely) too, so every lookup by it either
    tolerates an extra row or checks the key itself. DuckDB's hash() may change between
    versions: the staging fingerprint holds a sample of it (staging_fingerprint), so stored
    hashes from another version make every file staged again. -#}
{% macro key_hash(expr) -%}
    {{ return(adapter.dispatch('key_hash')(expr)) }}
{%- endmacro %}
{% macro default__key_hash(expr) -%}
    case when {{ expr }} is not null then hash({{ expr }}) end
{%- endmacro %}
{% macro spark__key_hash(expr) -%}
    case when {{ expr }} is not null then xxhash64({{ expr }}) end
{%- endmacro %}

{#- An aggregate: the group's values (nulls skipped) sorted and joined by `separator`. The
    list is gathered, then sorted once per group: DuckDB's `string_agg(x, sep order by x)`
    sorts inside the aggregate (dim_users' tags of 1.2M people: 1.7 s, so 0.9 s, the same
    text). -#}
{% macro sorted_string_agg(expr, separator) -%}
    {{ return(adapter.dispatch('sorted_string_agg')(expr, separator)) }}
{%- endmacro %}
{% macro default__sorted_string_agg(expr, separator) -%}
    array_to_string(list_sort(list({{ expr }})), {{ separator }})
{%- endmacro %}
{% macro spark__sorted_string_agg(expr, separator) -%}
    array_join(array_sort(collect_list({{ expr }})), {{ separator }})
{%- endmacro %}

{#- Hooks of the models rewritten whole every day whose rows are mostly random identifiers
    (the identity graph's sightings, nodes and edges, purchase days, user tags): DuckDB's
    dictionary + FSST string compression costs about as much as computing such a table (at a
    million people: sightings 3.3 -> 2.2 s, nodes 2.5 -> 1.9 s, edges 1.7 -> 0.9 s, purchase
    days 1.6 -> 1.1 s, user tags 1.1 -> 0.8 s; about twice the size on disk). The setting is
    global to the dbt process, so the post-hook restores the default; a model that fails
    between the two leaves only larger files behind. Spark: nothing to do. -#}
{% macro begin_uncompressed_strings() -%}
    {{ return(adapter.dispatch('begin_uncompressed_strings')()) }}
{%- endmacro %}
{% macro default__begin_uncompressed_strings() -%}
    set disabled_compression_methods = 'dict_fsst'
{%- endmacro %}
{% macro spark__begin_uncompressed_strings() -%}
{%- endmacro %}

{% macro end_uncompressed_strings() -%}
    {{ return(adapter.dispatch('end_uncompressed_strings')()) }}
{%- endmacro %}
{% macro default__end_uncompressed_strings() -%}
    reset disabled_compression_methods
{%- endmacro %}
{% macro spark__end_uncompressed_strings() -%}
{%- endmacro %}
