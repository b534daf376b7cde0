{#- One row per campaign per person touched on or before the as-of date: group, what was
    sent, and whether the person came back (was active) within `campaign_return_window_days`
    after the send date, observed up to the as-of date. A person in both groups of one
    campaign counts as treated (they were contacted) and is flagged. -#}
{%- set window = var('campaign_return_window_days') %}
with touches as (
    select * from {{ ref('int_campaign_touches') }}
),

activity as (
    select * from {{ ref('int_person_day_activity') }}
    where is_active
),

signals as (
    select * from {{ ref('int_person_reason_signals') }}
),

per_person as (
    select
        campaign_id,
        user_key,
        any_value(campaign_type) as campaign_type,
        min(sent_date) as sent_date,
        bool_or(touch_group = 'treatment') as is_treated,
        bool_or(touch_group = 'treatment') and bool_or(touch_group = 'control') as in_both_groups,
        arg_min(channel, sent_at) filter (where touch_group = 'treatment') as channel,
        arg_min(offer, sent_at) filter (where touch_group = 'treatment') as offer,
        coalesce(sum(cost), 0) as cost,
        count(*) as touches
    from touches
    group by campaign_id, user_key
),

returns as (
    select
        per_person.campaign_id,
        per_person.user_key,
        min(activity.activity_date) as return_date,
        sum(activity.revenue) as revenue_in_window
    from per_person
    inner join activity
        on
            per_person.user_key = activity.user_key
            and per_person.sent_date < activity.activity_date
            and per_person.sent_date + {{ window }} >= activity.activity_date
    group by per_person.campaign_id, per_person.user_key
),

reason_at_send as (
    select
        per_person.campaign_id,
        per_person.user_key,
        arg_max(signals.reason, signals.event_date) filter (where signals.reason_source = 'stated')
            as stated_reason,
        max(signals.event_date) filter (where signals.reason_source = 'support_ticket')
            as last_ticket_date
    from per_person
    inner join signals
        on
            per_person.user_key = signals.user_key
            and per_person.sent_date >= signals.event_date
    group by per_person.campaign_id, per_person.user_key
),

final as (
    select
        per_person.campaign_id,
        per_person.user_key,
        per_person.campaign_type,
        per_person.sent_date,
        case when per_person.is_treated then 'treatment' else 'control' end as touch_group,
        per_person.in_both_groups,
        per_person.channel,
        per_person.offer,
        per_person.cost,
        per_person.touches,
        {{ reason_as_of('reason_at_send.stated_reason', 'reason_at_send.last_ticket_date',
                        'per_person.sent_date') }} as reason,
        returns.return_date is not null as returned,
        returns.return_date,
        returns.return_date - per_person.sent_date as days_to_return,
        coalesce(returns.revenue_in_window, 0) as revenue_in_window,
        least({{ window }}, {{ as_of_date() }} - per_person.sent_date) as days_observed
    from per_person
    left join returns
        on per_person.campaign_id = returns.campaign_id and per_person.user_key = returns.user_key
    left join reason_at_send
        on
            per_person.campaign_id = reason_at_send.campaign_id
            and per_person.user_key = reason_at_send.user_key
)

select * from final
