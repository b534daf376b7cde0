with customers as (
    select * from {{ ref('stg_customers__all') }}
),

final as (
    select
        user_id,
        updated_at,
        email_hash,
        phone_hash,
        name_hash,
        gender,
        birth_date,
        birth_year,
        country,
        region,
        city,
        signup_at,
        acquisition_channel,
        marketing_consent,
        _file
    from customers
    where reject_reason is null and delivery_rank = 1
)

select * from final
