{#- Every raw campaign touch, typed, with the rule it breaks (if any); a repeated touch_id is
    a redelivery. -#}
{#- incremental by file on DuckDB (rebuilding every touch each day cost 2.3-2.5 s at the
    large benchmark, and its GX suite, validating a sample of every row, 3.0-4.4 s with the
    GX import the run's first suite pays); a plain table where
    delete+insert is not available (Spark without Delta: use Delta's merge there for
    incremental runs). An older table gains `_staging_run` and the fingerprint (it is staged
    again: see restage_all). -#}
{{
    config(
        materialized=("incremental" if target.type == "duckdb" else "table"),
        incremental_strategy="delete+insert",
        unique_key="touch_id",
        on_schema_change="append_new_columns",
        pre_hook="{{ unstage_changed_files('campaign_touches') }}",
        post_hook="{{ log_staging_build('campaign_touches') }}",
    )
}}
{%- set restage = restage_all() %}

with source as (
    -- a daily run reads only the files not staged yet (see macros/incremental.sql)
    {{ staged_rows('campaign_touches', restage) }}
),

typed as (
    select
        -- ids
        {{ clean_text('touch_id') }} as touch_id,
        {{ clean_text('campaign_id') }} as campaign_id,
        {{ clean_text('user_id') }} as user_id,
        {{ clean_text('anonymous_id') }} as anonymous_id,
        {{ pii_hash('email', normalize_email('email')) }} as email_hash,
        {{ pii_hash('phone', normalize_phone('phone')) }} as phone_hash,
        -- timestamps
        {{ parse_ts('sent_at') }} as sent_at,
        -- amounts
        {{ parse_amount('cost') }} as cost,
        -- attributes
        lower({{ clean_text('campaign_type') }}) as campaign_type,
        lower({{ clean_text('channel') }}) as channel,
        {{ clean_text('offer') }} as offer,
        lower({{ clean_text(adapter.quote('group')) }}) as touch_group,
        _extra,
        -- lineage and raw text for rejections
        _file,
        _file_modified_at,
        _row,
        _staging_fingerprint,
        _parse_error,
        sent_at as raw_sent_at,
        cost as raw_cost
    from source
),

checked as (
    select
        *,
        case
            when _parse_error is not null then 'unparseable_json_line'
            when touch_id is null then 'missing_touch_id'
            when campaign_id is null then 'missing_campaign_id'
            when {{ clean_text('raw_sent_at') }} is null then 'missing_sent_at'
            when sent_at is null then 'invalid_sent_at'
            when {{ is_future('sent_at') }} then 'future_timestamp'
            when touch_group is null then 'missing_group'
            when touch_group not in ('treatment', 'control') then 'invalid_group'
            when {{ clean_text('raw_cost') }} is not null and cost is null then 'invalid_cost'
            when cost < 0 then 'negative_cost'
            when coalesce(user_id, anonymous_id, email_hash, phone_hash) is null then 'missing_identifier'
        end as reject_reason
    from typed
),

ranked_input as (
    {{ with_earlier_rows('checked', 'touch_id', ['delivery_rank', '_staging_run'], restage) }}
)

select
    *,
    case
        when reject_reason is null
            then row_number() over (partition by touch_id, reject_reason is null order by _file, _row)
    end as delivery_rank,
    -- this build wrote the row (new, or an earlier delivery re-ranked): see log_staging_build
    {{ staging_run() }} as _staging_run
from ranked_input
