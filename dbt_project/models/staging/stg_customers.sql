{#- A view, like stg_events and stg_orders: it filters stg_customers__all, and writing its
    rows again each day cost more (1.3-1.5 s at the large benchmark) than its two readers
    spend filtering. `_staging_run` says which staging build wrote a row (its GX suite
    validates the newest build's rows). -#}
{{ config(materialized="view") }}

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
        _file,
        _staging_run
    from customers
    where reject_reason is null and delivery_rank = 1
)

select * from final
