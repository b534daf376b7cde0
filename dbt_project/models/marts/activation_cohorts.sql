{#- One row per signup week and acquisition channel ('all' for everyone): how many signed
    up, how many activated within the activation window, and how long it took. Weeks whose
    window has not fully passed are left out. -#}
with milestones as (
    select * from {{ ref('int_person_milestones') }}
    where signup_date is not null
),

members as (
    select
        milestones.user_key,
        cast(date_trunc('week', milestones.signup_date) as date) as cohort_start,
        coalesce(profiles.acquisition_channel, 'unknown') as acquisition_channel,
        milestones.is_activated_in_window,
        case
            when milestones.is_activated_in_window
                then milestones.activation_date - milestones.signup_date
        end as days_to_activate
    from milestones
    left join {{ ref('int_customer_profiles') }} as profiles
        on milestones.user_key = profiles.user_key
),

by_channel as (
    select
        cohort_start,
        acquisition_channel,
        count(*) as cohort_users,
        count(*) filter (where is_activated_in_window) as activated_users,
        avg(days_to_activate) as avg_days_to_activate,
        median(days_to_activate) as median_days_to_activate
    from members
    group by cohort_start, acquisition_channel
),

everyone as (
    select
        cohort_start,
        'all' as acquisition_channel,
        count(*) as cohort_users,
        count(*) filter (where is_activated_in_window) as activated_users,
        avg(days_to_activate) as avg_days_to_activate,
        median(days_to_activate) as median_days_to_activate
    from members
    group by cohort_start
),

aggregated as (
    select * from by_channel
    union all
    select * from everyone
),

final as (
    select
        cohort_start,
        {{ as_of_date() }} as as_of_date,
        acquisition_channel,
        cohort_users,
        activated_users,
        activated_users / cohort_users as activation_rate,
        avg_days_to_activate,
        median_days_to_activate
    from aggregated
    where cohort_start + 6 + {{ var('lifecycle_activation_window_days') }} <= {{ as_of_date() }}
)

select * from final
