{#- One row per dimension and value: people who churned in the last
    `lifecycle_churn_reasons_window_days`, broken down by stated cancel reason, acquisition
    channel, region, age band and tenure band; `share` of all churners in the window. -#}
{%- set dimensions = ['cancel_reason', 'acquisition_channel', 'region', 'age_band', 'tenure_band'] %}
with churners as (
    select * from {{ ref('int_recent_churners') }}
),

total as (
    select count(*) as churned_users from churners
),

breakdown as (
    {%- for dimension in dimensions %}
        select
            '{{ dimension }}' as dimension,
            {{ dimension }} as dimension_value,
            count(*) as churned_users
        from churners
        group by {{ dimension }}
        {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

final as (
    select
        {{ as_of_date() }} as as_of_date,
        breakdown.dimension,
        breakdown.dimension_value,
        breakdown.churned_users,
        breakdown.churned_users / total.churned_users as share
    from breakdown
    cross join total
)

select * from final
