{#- One row per person with at least one completed order: recency (days since the last
    completed order), frequency and monetary value (completed orders and their value in the
    last `rfm_window_days`), 1-5 scores (quintiles; ties share a score; 5 = best) and the
    segment from the R x F map:

      R \ F   1            2-3                  4-5
      5       New          Potential Loyalist   Champions
      4       Promising    Potential Loyalist   Loyal
      3       About to Sleep (F 1-2), Need Attention (F 3), Loyal (F 4-5)
      1-2     Lost (R1 F1), Hibernating (F 1-2), At Risk (F 3-4), Can't Lose (F 5)

    Value tier from the M score: top (5), high (4), medium (3), low (1-2). -#}
{{
    config(
        pre_hook="{{ begin_uncompressed_strings() }}",
        post_hook="{{ end_uncompressed_strings() }}",
    )
}}
with orders as (
    select * from {{ ref('int_orders') }}
    where status = 'completed'
),

per_person as (
    select
        user_key,
        max(order_date) as last_order_date,
        count(*) filter (
            where order_date > {{ as_of_date() }} - {{ var('rfm_window_days') }}
        ) as frequency,
        coalesce(sum(amount) filter (
            where order_date > {{ as_of_date() }} - {{ var('rfm_window_days') }}
        ), 0) as monetary
    from orders
    group by user_key
),

scored as (
    select
        user_key,
        last_order_date,
        {{ as_of_date() }} - last_order_date as recency_days,
        frequency,
        monetary,
        cast(
            least(5, 1 + floor(5 * percent_rank() over (order by {{ as_of_date() }} - last_order_date desc))) as integer
        )
            as r_score,
        cast(least(5, 1 + floor(5 * percent_rank() over (order by frequency))) as integer) as f_score,
        cast(least(5, 1 + floor(5 * percent_rank() over (order by monetary))) as integer) as m_score
    from per_person
),

final as (
    select
        user_key,
        {{ as_of_date() }} as as_of_date,
        last_order_date,
        recency_days,
        frequency,
        monetary,
        r_score,
        f_score,
        m_score,
        cast(r_score as varchar) || cast(f_score as varchar) || cast(m_score as varchar) as rfm_code,
        case
            when r_score = 5 and f_score >= 4 then 'Champions'
            when r_score = 5 and f_score = 1 then 'New'
            when r_score >= 4 and f_score in (2, 3) then 'Potential Loyalist'
            when r_score = 4 and f_score = 1 then 'Promising'
            when r_score in (3, 4) and f_score >= 4 then 'Loyal'
            when r_score = 3 and f_score = 3 then 'Need Attention'
            when r_score = 3 then 'About to Sleep'
            when r_score = 1 and f_score = 1 then 'Lost'
            when f_score <= 2 then 'Hibernating'
            when f_score <= 4 then 'At Risk'
            else 'Can''t Lose'
        end as rfm_segment,
        case
            when m_score = 5 then 'top'
            when m_score = 4 then 'high'
            when m_score = 3 then 'medium'
            else 'low'
        end as value_tier
    from scored
)

select * from final
