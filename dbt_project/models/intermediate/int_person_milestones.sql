{#- One row per person: the business dates that anchor their lifecycle.

    signup_date: the CRM signup, else the first signup event, else (for people known by an
    account, email or phone) the first order: a shop customer without an account becomes a
    customer with their first order. People with none of these stay prospects.
    activation_date: the first activation action (an order, or an event in
    `lifecycle_activation_event_types`) on or after signup; it makes the person `activated`
    only when it falls within `lifecycle_activation_window_days` of signup. -#}
with activity as (
    select * from {{ ref('int_person_day_activity') }}
),

events as (
    select * from {{ ref('int_events') }}
),

people as (
    select
        user_key,
        {{ business_date('min(first_seen_at)') }} as first_seen_date,
        bool_or(node_type in ('user_id', 'email', 'phone')) as is_known
    from {{ ref('int_identity_map') }}
    group by user_key
),

profiles as (
    select * from {{ ref('int_customer_profiles') }}
),

erased as (
    select * from {{ ref('int_erased_users') }}
),

signup_events as (
    select
        user_key,
        min(event_date) as signup_event_date
    from events
    where event_type = 'signup'
    group by user_key
),

first_orders as (
    select
        user_key,
        min(activity_date) as first_order_date
    from activity
    where orders > 0
    group by user_key
),

signups as (
    select
        people.user_key,
        people.first_seen_date,
        coalesce(
            {{ business_date('profiles.signup_at') }},
            signup_events.signup_event_date,
            case when people.is_known then first_orders.first_order_date end
        ) as signup_date
    from people
    left join profiles on people.user_key = profiles.user_key
    left join signup_events on people.user_key = signup_events.user_key
    left join first_orders on people.user_key = first_orders.user_key
),

activations as (
    select
        signups.user_key,
        min(activity.activity_date) as activation_date
    from signups
    inner join activity
        on
            signups.user_key = activity.user_key
            and signups.signup_date <= activity.activity_date
            and (activity.activation_events > 0 or activity.orders > 0)
    group by signups.user_key
),

final as (
    select
        signups.user_key,
        least(signups.first_seen_date, coalesce(signups.signup_date, signups.first_seen_date))
            as first_seen_date,
        signups.signup_date,
        activations.activation_date,
        coalesce(
            activations.activation_date
            < signups.signup_date + {{ var('lifecycle_activation_window_days') }},
            false
        ) as is_activated_in_window
    from signups
    left join activations on signups.user_key = activations.user_key
    where
        signups.first_seen_date <= {{ as_of_date() }}
        and signups.user_key not in (select erased.user_key from erased)
)

select * from final
