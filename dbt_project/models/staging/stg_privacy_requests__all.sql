{#- Every raw privacy request, typed, with the rule it breaks (if any). -#}
with source as (
    select * from {{ source('raw', 'privacy_requests') }}
),

typed as (
    select
        -- ids
        {{ clean_text('request_id') }} as request_id,
        {{ clean_text('user_id') }} as user_id,
        {{ pii_hash('email', normalize_email('email')) }} as email_hash,
        {{ pii_hash('phone', normalize_phone('phone')) }} as phone_hash,
        -- timestamps
        {{ parse_ts('requested_at') }} as requested_at,
        -- attributes
        lower({{ clean_text('request_type') }}) as request_type,
        -- lineage and raw text for rejections
        _file,
        _file_modified_at,
        _row,
        _parse_error,
        requested_at as raw_requested_at
    from source
),

checked as (
    select
        *,
        case
            when _parse_error is not null then 'unparseable_json_line'
            when request_id is null then 'missing_request_id'
            when request_type is null then 'missing_request_type'
            when request_type not in ('delete', 'withdraw_consent') then 'invalid_request_type'
            when {{ clean_text('raw_requested_at') }} is null then 'missing_requested_at'
            when requested_at is null then 'invalid_requested_at'
            when {{ is_future('requested_at') }} then 'future_timestamp'
            when coalesce(user_id, email_hash, phone_hash) is null then 'missing_identifier'
        end as reject_reason
    from typed
)

select
    *,
    case
        when reject_reason is null
            then row_number() over (partition by request_id, reject_reason is null order by _file, _row)
    end as delivery_rank
from checked
