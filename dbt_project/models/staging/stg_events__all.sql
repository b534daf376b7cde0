{#- Every raw event row, typed, with the contract rule it breaks (if any) and its rank among
    redeliveries of the same event_id. stg_events and the quarantine read this. -#}
{#- incremental by file on DuckDB; a plain table where delete+insert is not available
    (Spark without Delta: use Delta's merge there for incremental runs) -#}
{#- unique_key: the id's 64-bit hash (key_hash): the day's ids are looked up among every
    staged row twice (earlier deliveries, then the delete), by integers instead of strings.
    Another id with the same hash is only rewritten unchanged: it is read as an earlier row,
    ranked among the rows of its own id, deleted and inserted again. -#}
{{
    config(
        materialized=("incremental" if target.type == "duckdb" else "table"),
        incremental_strategy="delete+insert",
        unique_key="_event_key",
        on_schema_change="append_new_columns",
        pre_hook="{{ unstage_changed_files('events') }}",
        post_hook=[
            "{{ note_unranked_run('events') }}",
            "{{ log_staging_build('events') }}",
            after_commit("{{ rank_redeliveries('event_id', 'delivery_rank', '_file, _row, occurred_at') }}"),
        ],
    )
}}
{%- set restage = restage_all() %}

with source as (
    -- a daily run reads only the files not staged yet (see macros/incremental.sql)
    {{ staged_rows('events', restage) }}
),

typed as (
    select
        -- ids
        {{ clean_text('event_id') }} as event_id,
        {{ clean_text('order_id') }} as order_id,
        {{ clean_text('user_id') }} as user_id,
        {{ clean_text('anonymous_id') }} as anonymous_id,
        {{ pii_hash('email', normalize_email('email')) }} as email_hash,
        {{ pii_hash('phone', normalize_phone('phone')) }} as phone_hash,
        -- event
        lower({{ clean_text('event_type') }}) as event_type,
        lower({{ clean_text('channel') }}) as channel,
        -- timestamps
        {{ parse_ts('occurred_at') }} as occurred_at,
        -- amounts
        {{ parse_amount('amount') }} as amount,
        coalesce(upper({{ clean_text('currency') }}), '{{ var("currency") }}') as currency,
        -- attributes: declared properties merged with unknown extra columns
        {{ merged_properties('properties', '_extra') }} as properties,
        -- lineage and the raw text needed to explain a rejection
        _file,
        _file_modified_at,
        _row,
        _staging_fingerprint,
        _parse_error,
        occurred_at as raw_occurred_at,
        amount as raw_amount,
        properties as raw_properties
    from source
),

checked as (
    select
        *,
        {{ key_hash('event_id') }} as _event_key,
        case
            when _parse_error is not null then 'unparseable_json_line'
            when event_id is null then 'missing_event_id'
            when event_type is null then 'missing_event_type'
            when {{ clean_text('raw_occurred_at') }} is null then 'missing_occurred_at'
            when occurred_at is null then 'invalid_occurred_at'
            when {{ is_future('occurred_at') }} then 'future_timestamp'
            when coalesce(user_id, anonymous_id, email_hash, phone_hash) is null then 'missing_identifier'
            when {{ clean_text('raw_amount') }} is not null and amount is null then 'invalid_amount'
            when {{ clean_text('raw_properties') }} is not null and properties is null then 'invalid_properties'
        end as reject_reason
    from typed
),

ranked_input as (
    {{ with_earlier_rows('checked', '_event_key', ['delivery_rank', '_staging_run'], restage) }}
)

select
    event_id,
    _event_key,
    order_id,
    user_id,
    anonymous_id,
    email_hash,
    phone_hash,
    event_type,
    channel,
    occurred_at,
    amount,
    currency,
    properties,
    _file,
    _file_modified_at,
    _row,
    _staging_fingerprint,
    _parse_error,
    -- the raw text is kept where it explains a rejection (it would double the table's width)
    case when reject_reason is not null then raw_occurred_at end as raw_occurred_at,
    case when reject_reason is not null then raw_amount end as raw_amount,
    case when reject_reason is not null then raw_properties end as raw_properties,
    reject_reason,
    {{ redelivery_rank('event_id', '_file, _row, occurred_at') }} as delivery_rank,
    {{ staging_run() }} as _staging_run
from ranked_input
