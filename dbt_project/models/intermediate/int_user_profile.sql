{#- One row per person (user_key) seen on or before the as-of date, erased people excepted:
    who they are (profile, identifiers) and what they did (activity totals). dim_users adds
    lifecycle, value and tags. -#}
{{
    config(
        pre_hook="{{ begin_uncompressed_strings() }}",
        post_hook="{{ end_uncompressed_strings() }}",
    )
}}
with identity_map as (
    select * from {{ ref('int_identity_map') }}
),

profiles as (
    select * from {{ ref('int_customer_profiles') }}
),

-- each person's activity totals, kept per person (summed from every day only for the
-- people whose history changed)
activity_summary as (
    select * from {{ ref('int_person_activity_summary') }}
),

erased as (
    select * from {{ ref('int_erased_users') }}
),

people as (
    select
        user_key,
        min(first_seen_at) as first_seen_at,
        min(substr(node_id, 3)) filter (where node_type = 'user_id') as account_id,
        count(*) filter (where node_type = 'user_id') as account_ids,
        count(*) filter (where node_type = 'anonymous_id') as device_ids,
        bool_or(node_type in ('user_id', 'email', 'phone')) as is_known,
        bool_or(is_shared) as is_shared_identifier
    from identity_map
    group by user_key
),

final as (
    select
        people.user_key,
        coalesce(profiles.user_id, people.account_id) as user_id,
        people.first_seen_at,
        profiles.signup_at,
        profiles.acquisition_channel,
        profiles.country,
        profiles.region,
        profiles.city,
        profiles.gender,
        profiles.birth_year,
        case
            when profiles.birth_year is null then null
            when year({{ as_of_date() }}) - profiles.birth_year < 18 then 'under_18'
            when year({{ as_of_date() }}) - profiles.birth_year < 25 then '18-24'
            when year({{ as_of_date() }}) - profiles.birth_year < 35 then '25-34'
            when year({{ as_of_date() }}) - profiles.birth_year < 45 then '35-44'
            when year({{ as_of_date() }}) - profiles.birth_year < 55 then '45-54'
            when year({{ as_of_date() }}) - profiles.birth_year < 65 then '55-64'
            else '65+'
        end as age_band,
        coalesce(profiles.marketing_consent, false) as marketing_consent,
        coalesce(profiles.consent_withdrawn, false) as consent_withdrawn,
        people.is_known,
        people.is_shared_identifier,
        people.account_ids,
        people.device_ids,
        activity_summary.first_active_date,
        activity_summary.last_active_date,
        coalesce(activity_summary.active_days, 0) as active_days,
        coalesce(activity_summary.orders, 0) as orders,
        coalesce(activity_summary.revenue, 0) as revenue
    from people
    left join profiles on people.user_key = profiles.user_key
    left join activity_summary on people.user_key = activity_summary.user_key
    where people.user_key not in (select erased.user_key from erased)
)

select * from final
