{#- Every raw order row, typed, with the rule it breaks (if any) and its version rank: a
    repeated order_id is a newer version of the same order, latest updated_at wins. -#}
{#- incremental by file on DuckDB; a plain table where delete+insert is not available
    (Spark without Delta: use Delta's merge there for incremental runs). An older table gains
    `_staging_run` (its rows stay null: no logged build wrote them). -#}
{{
    config(
        materialized=("incremental" if target.type == "duckdb" else "table"),
        incremental_strategy="delete+insert",
        unique_key="order_id",
        on_schema_change="append_new_columns",
        pre_hook="{{ unstage_changed_files('orders') }}",
        post_hook="{{ log_staging_build('orders') }}",
    )
}}
{%- set restage = restage_all() %}

with source as (
    -- a daily run reads only the files not staged yet (see macros/incremental.sql)
    {{ staged_rows('orders', restage) }}
),

typed as (
    select
        -- ids
        {{ clean_text('order_id') }} as order_id,
        {{ clean_text('user_id') }} as user_id,
        {{ clean_text('anonymous_id') }} as anonymous_id,
        {{ pii_hash('email', normalize_email('email')) }} as email_hash,
        {{ pii_hash('phone', normalize_phone('phone')) }} as phone_hash,
        {{ clean_text('store_id') }} as store_id,
        -- timestamps
        {{ parse_ts('ordered_at') }} as ordered_at,
        coalesce({{ parse_ts('updated_at') }}, {{ parse_ts('ordered_at') }}) as updated_at,
        -- amounts
        {{ parse_amount('amount') }} as amount,
        coalesce(upper({{ clean_text('currency') }}), '{{ var("currency") }}') as currency,
        -- attributes
        coalesce(lower({{ clean_text('status') }}), 'completed') as status,
        lower({{ clean_text('channel') }}) as channel,
        _extra,
        -- lineage and raw text for rejections
        _file,
        _file_modified_at,
        _row,
        _staging_fingerprint,
        _parse_error,
        ordered_at as raw_ordered_at,
        updated_at as raw_updated_at,
        amount as raw_amount
    from source
),

checked as (
    select
        *,
        case
            when _parse_error is not null then 'unparseable_json_line'
            when order_id is null then 'missing_order_id'
            when {{ clean_text('raw_ordered_at') }} is null then 'missing_ordered_at'
            when ordered_at is null then 'invalid_ordered_at'
            when {{ is_future('ordered_at') }} then 'future_timestamp'
            when {{ clean_text('raw_updated_at') }} is not null and {{ parse_ts('raw_updated_at') }} is null
                then 'invalid_updated_at'
            when {{ clean_text('raw_amount') }} is null then 'missing_amount'
            when amount is null then 'invalid_amount'
            when amount < 0 then 'negative_amount'
            when status not in ('completed', 'refunded', 'cancelled') then 'invalid_status'
            when coalesce(user_id, anonymous_id, email_hash, phone_hash) is null then 'missing_identifier'
        end as reject_reason
    from typed
),

ranked_input as (
    {{ with_earlier_rows('checked', 'order_id', ['version_rank', '_staging_run'], restage) }}
)

select
    *,
    case
        when reject_reason is null
            then row_number() over (
                partition by order_id, reject_reason is null
                order by updated_at desc, _file desc, _row desc nulls last
            )
    end as version_rank,
    -- this build wrote the row (new, or an earlier version re-ranked): see log_staging_build
    {{ staging_run() }} as _staging_run
from ranked_input
