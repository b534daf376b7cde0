{#- Why a person may leave, as of a date: their latest stated cancel reason; else `service`
    when a support ticket came in the `lifecycle_churn_reasons_window_days` before; else
    `not_stated`. Used for win-back candidates (as of today) and past campaign contacts (as
    of the send date), so both speak of the same reasons. -#}
{% macro reason_as_of(stated_reason, last_ticket_date, on_date) -%}
    coalesce(
        {{ stated_reason }},
        case
            when {{ last_ticket_date }} > {{ on_date }} - {{ var('lifecycle_churn_reasons_window_days') }}
                then 'service'
        end,
        'not_stated'
    )
{%- endmacro %}
