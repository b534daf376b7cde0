{#- A Jinja list of strings as a SQL list body: 'a', 'b', 'c'. -#}
{% macro sql_list(values) -%}
    {%- for v in values %}'{{ v | replace("'", "''") }}'{% if not loop.last %}, {% endif %}{% endfor -%}
{%- endmacro %}
