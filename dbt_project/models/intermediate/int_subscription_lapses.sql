{#- One row per lapsed subscription: the day a subscriber's paid period plus grace ran out
    without a new payment (start or renew), on or before the as-of date. Each payment covers
    `lifecycle_subscription_period_days`. -#}
with payments as (
    select
        user_key,
        activity_date as paid_on
    from {{ ref('int_person_day_activity') }}
    where subscription_payments > 0
),

sequenced as (
    select
        user_key,
        paid_on,
        paid_on + {{ var('lifecycle_subscription_period_days') }} as paid_through,
        lead(paid_on) over (partition by user_key order by paid_on) as next_paid_on
    from payments
),

final as (
    select
        user_key,
        paid_through,
        paid_through + {{ var('lifecycle_subscription_grace_days') }} as lapse_date
    from sequenced
    where
        (next_paid_on is null or next_paid_on > paid_through + {{ var('lifecycle_subscription_grace_days') }})
        and paid_through + {{ var('lifecycle_subscription_grace_days') }} <= {{ as_of_date() }}
)

select * from final
