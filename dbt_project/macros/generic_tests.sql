{#- Generic tests without a package dependency (a fresh clone must build offline-free). -#}

{% test unique_combination(model, columns) %}
    select {{ columns | join(', ') }}, count(*) as n
    from {{ model }}
    group by {{ columns | join(', ') }}
    having count(*) > 1
{% endtest %}

{% test non_negative(model, column_name) %}
    select {{ column_name }} from {{ model }} where {{ column_name }} < 0
{% endtest %}

{% test accepted_range_0_1(model, column_name) %}
    select {{ column_name }} from {{ model }}
    where {{ column_name }} < 0 or {{ column_name }} > 1
{% endtest %}
