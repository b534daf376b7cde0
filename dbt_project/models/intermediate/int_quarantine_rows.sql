{#- One row per raw row that breaks a contract rule, with its reason code and where it came
    from. Working database only: it may hold personal data; marts publish counts. -#}
{%- set sources = {
    'events': "event_id",
    'orders': "order_id",
    'customers': "user_id",
    'campaign_touches': "touch_id",
    'privacy_requests': "request_id",
} %}
with
{%- for source, key in sources.items() %}
    {{ source }} as (
        select
            '{{ source }}' as source,
            reject_reason as reason,
            {{ key }} as record_id,
            _file as file,
            _row as file_row
        from {{ ref('stg_' ~ source ~ '__all') }}
        where reject_reason is not null
    ),
{%- endfor %}

final as (
    {%- for source in sources %}
        select * from {{ source }}
        {% if not loop.last %}union all{% endif %}
    {%- endfor %}
)

select * from final
