{#- The key of a row's identifier combination, used to look up its person in
    int_identity_tuples with one equality join instead of four. -#}
{% macro identity_tuple_key(user_id, anonymous_id, email_hash, phone_hash) -%}
    coalesce({{ user_id }}, '') || chr(31) || coalesce({{ anonymous_id }}, '') || chr(31)
    || coalesce({{ email_hash }}, '') || chr(31) || coalesce({{ phone_hash }}, '')
{%- endmacro %}
