{#- The key of a row's identifier combination, used to look up its person in
    int_identity_tuples with one equality join instead of four. -#}
{% macro identity_tuple_key(user_id, anonymous_id, email_hash, phone_hash) -%}
    coalesce({{ user_id }}, '') || chr(31) || coalesce({{ anonymous_id }}, '') || chr(31)
    || coalesce({{ email_hash }}, '') || chr(31) || coalesce({{ phone_hash }}, '')
{%- endmacro %}

{#- A 64-bit hash of the same four identifiers, equal for equal tuple keys (empty and null
    alike): a cheap pre-filter, never a key. -#}
{% macro identity_tuple_hash(user_id, anonymous_id, email_hash, phone_hash) -%}
    hash(
        coalesce({{ user_id }}, ''), coalesce({{ anonymous_id }}, ''), coalesce({{ email_hash }}, ''),
        coalesce({{ phone_hash }}, '')
    )
{%- endmacro %}

{#- Join a staged relation (alias) to its person and leave out erased people: the
    `from <alias>` of every intermediate model that attaches user_key to source rows. -#}
{% macro join_person(alias) -%}
    inner join {{ ref('int_identity_tuples') }} as tuples
        on
            {{ identity_tuple_key(
                alias ~ '.user_id', alias ~ '.anonymous_id', alias ~ '.email_hash', alias ~ '.phone_hash'
            ) }}
            = tuples.tuple_key
    where tuples.user_key not in (select erased.user_key from {{ ref('int_erased_users') }} as erased)
{%- endmacro %}
