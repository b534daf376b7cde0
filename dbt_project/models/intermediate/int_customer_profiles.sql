{#- One row per person with a CRM profile: the latest version of each field as of the
    as-of date (a later version with a blank field does not erase an earlier value), and
    consent withdrawn by a privacy request on or before the as-of date. Versions are ordered
    by time, then account id: two accounts of one person may be updated at the same time,
    and the pick must not depend on the order rows arrive in (it did: a daily build and a
    full refresh could give a merged person different attributes). -#}
{{
    config(
        pre_hook="{{ begin_uncompressed_strings() }}",
        post_hook="{{ end_uncompressed_strings() }}",
    )
}}
{%- set version_order = ordering_key(['updated_at', 'user_id']) %}
with customers as (
    select * from {{ ref('stg_customers') }}
    where updated_at < {{ as_of_end_utc() }}
),

tuples as (
    select * from {{ ref('int_identity_tuples') }}
),

withdrawals as (
    select distinct tuples.user_key
    from {{ ref('stg_privacy_requests') }} as requests
    inner join tuples
        on
            {{ identity_tuple_key('requests.user_id', 'null', 'requests.email_hash', 'requests.phone_hash') }}
            = tuples.tuple_key
    where requests.request_type = 'withdraw_consent' and requests.requested_at < {{ as_of_end_utc() }}
),

keyed as (
    select
        tuples.user_key,
        customers.*
    from customers
    inner join tuples
        on
            {{ identity_tuple_key('customers.user_id', 'null', 'customers.email_hash', 'customers.phone_hash') }}
            = tuples.tuple_key
),

latest as (
    select
        user_key,
        min(user_id) as user_id,
        count(distinct user_id) as accounts,
        {{ value_at_max('gender', version_order) }} filter (where gender is not null) as gender,
        {{ value_at_max('birth_year', version_order) }} filter (where birth_year is not null) as birth_year,
        {{ value_at_max('country', version_order) }} filter (where country is not null) as country,
        {{ value_at_max('region', version_order) }} filter (where region is not null) as region,
        {{ value_at_max('city', version_order) }} filter (where city is not null) as city,
        min(signup_at) as signup_at,
        {{ value_at_min('acquisition_channel', version_order) }} filter (where acquisition_channel is not null)
            as acquisition_channel,
        {{ value_at_max('marketing_consent', version_order) }} filter (where marketing_consent is not null)
            as marketing_consent,
        max(updated_at) as profile_updated_at
    from keyed
    group by user_key
),

final as (
    select
        latest.user_key,
        latest.user_id,
        latest.accounts,
        latest.gender,
        latest.birth_year,
        latest.country,
        latest.region,
        latest.city,
        latest.signup_at,
        latest.acquisition_channel,
        latest.profile_updated_at,
        coalesce(latest.marketing_consent, false) and withdrawals.user_key is null as marketing_consent,
        withdrawals.user_key is not null as consent_withdrawn
    from latest
    left join withdrawals on latest.user_key = withdrawals.user_key
)

select * from final
