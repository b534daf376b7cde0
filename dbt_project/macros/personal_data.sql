{#- Personal data: normalised, then replaced by a keyed hash. The key (ULM_PII_KEY) is
    written by the landing step into landing.pii_key and read here with a scalar subquery,
    so it never appears in compiled SQL or logs. -#}

{% macro normalize_email(col) -%}
    case when lower(trim({{ col }})) like '%_@_%' then lower(trim({{ col }})) end
{%- endmacro %}

{#- Digits with country code: "+86 138..." and "0086138..." keep their code; a national
    number gets the configured default code. Fewer than 7 digits is not a phone. -#}
{% macro normalize_phone(col) -%}
    case
        when length({{ regexp_replace_all("coalesce(" ~ col ~ ", '')", '[^0-9]', '') }}) < 7 then null
        when trim({{ col }}) like '+%' then {{ regexp_replace_all(col, '[^0-9]', '') }}
        when {{ regexp_replace_all(col, '[^0-9]', '') }} like '00%'
            then substr({{ regexp_replace_all(col, '[^0-9]', '') }}, 3)
        else '{{ var("default_phone_country_code") }}'
            || {{ ltrim_chars(regexp_replace_all(col, '[^0-9]', ''), '0') }}
    end
{%- endmacro %}

{% macro pii_hash(kind, normalized_expr) -%}
    {%- set keyed = "(select pii_key.key from " ~ source('landing', 'pii_key') ~ " as pii_key) || '|"
        ~ kind ~ "|' || (" ~ normalized_expr ~ ")" -%}
    case when ({{ normalized_expr }}) is not null then {{ sha256_hex(keyed) }} end
{%- endmacro %}
