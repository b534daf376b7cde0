{#- Every raw CRM profile row, typed. Versions of a user are all kept (history); an exact
    repeat of the same (user_id, updated_at) is a duplicate. -#}
{#- incremental by file on DuckDB; a plain table where delete+insert is not available
    (Spark without Delta: use Delta's merge there for incremental runs) -#}
{{
    config(
        materialized=("incremental" if target.type == "duckdb" else "table"),
        incremental_strategy="delete+insert",
        unique_key="user_id",
        on_schema_change="append_new_columns",
        pre_hook="{{ unstage_changed_files('customers') }}",
        post_hook="{{ log_staging_build('customers') }}",
    )
}}
{%- set restage = restage_all() %}

with source as (
    -- a daily run reads only the files not staged yet (see macros/incremental.sql)
    {{ staged_rows('customers', restage) }}
),

typed as (
    select
        -- ids
        {{ clean_text('user_id') }} as user_id,
        {{ pii_hash('email', normalize_email('email')) }} as email_hash,
        {{ pii_hash('phone', normalize_phone('phone')) }} as phone_hash,
        {{ pii_hash('name', "lower(" ~ clean_text('name') ~ ")") }} as name_hash,
        -- timestamps
        {{ parse_ts('updated_at') }} as updated_at,
        {{ parse_ts('signup_at') }} as signup_at,
        -- attributes
        lower({{ clean_text('gender') }}) as gender,
        try_cast({{ clean_text('birth_date') }} as date) as birth_date,
        coalesce(
            year(try_cast({{ clean_text('birth_date') }} as date)),
            try_cast({{ clean_text('birth_year') }} as integer)
        ) as birth_year,
        upper({{ clean_text('country') }}) as country,
        {{ clean_text('region') }} as region,
        {{ clean_text('city') }} as city,
        lower({{ clean_text('acquisition_channel') }}) as acquisition_channel,
        {{ parse_bool('marketing_consent') }} as marketing_consent,
        _extra,
        -- lineage and raw text for rejections
        _file,
        _file_modified_at,
        _row,
        _staging_fingerprint,
        _parse_error,
        updated_at as raw_updated_at,
        signup_at as raw_signup_at,
        birth_date as raw_birth_date,
        birth_year as raw_birth_year
    from source
),

checked as (
    select
        *,
        case
            when _parse_error is not null then 'unparseable_json_line'
            when user_id is null then 'missing_user_id'
            when {{ clean_text('raw_updated_at') }} is null then 'missing_updated_at'
            when updated_at is null then 'invalid_updated_at'
            when {{ is_future('updated_at') }} then 'future_timestamp'
            when {{ clean_text('raw_signup_at') }} is not null and signup_at is null then 'invalid_signup_at'
            when {{ clean_text('raw_birth_date') }} is not null and birth_date is null then 'invalid_birth_date'
            when
                {{ clean_text('raw_birth_year') }} is not null
                and try_cast({{ clean_text('raw_birth_year') }} as integer) is null then 'invalid_birth_year'
        end as reject_reason
    from typed
),

ranked_input as (
    {{ with_earlier_rows('checked', 'user_id', ['delivery_rank', '_staging_run'], restage) }}
)

select
    *,
    case
        when reject_reason is null
            then row_number() over (
                partition by user_id, updated_at, reject_reason is null order by _file, _row
            )
    end as delivery_rank,
    -- this build wrote the row (new, or an earlier version re-ranked): see log_staging_build
    {{ staging_run() }} as _staging_run
from ranked_input
