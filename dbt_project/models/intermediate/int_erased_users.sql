{#- One row per person who asked to be erased (a `delete` request on or before the as-of date).
    Every model that publishes person-level data leaves them out. -#}
with requests as (
    select * from {{ ref('stg_privacy_requests') }}
),

tuples as (
    select * from {{ ref('int_identity_tuples') }}
),

final as (
    select
        tuples.user_key,
        min(requests.requested_at) as requested_at
    from requests
    inner join tuples
        on
            {{ identity_tuple_key('requests.user_id', 'null', 'requests.email_hash', 'requests.phone_hash') }}
            = tuples.tuple_key
    where requests.request_type = 'delete' and requests.requested_at < {{ as_of_end_utc() }}
    group by tuples.user_key
)

select * from final
