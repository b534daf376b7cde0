{#- Text cleaning shared by every staging model. -#}

{% macro clean_text(col) -%}
    nullif(trim({{ col }}), '')
{%- endmacro %}

{#- A raw timestamp string as a UTC timestamp. With an offset (Z, +08:00, -0500, +00) it is
    converted to UTC; without one it is read in the source time zone. Unparseable: null. -#}
{% macro parse_ts(col) -%}
    case
        when {{ clean_text(col) }} is null then null
        when {{ has_utc_offset("trim(" ~ col ~ ")") }} then {{ offset_text_to_utc("trim(" ~ col ~ ")") }}
        else {{ local_to_utc("try_cast(trim(" ~ col ~ ") as timestamp)", var("source_timezone")) }}
    end
{%- endmacro %}

{#- The business-calendar date of a UTC timestamp. -#}
{% macro business_date(col) -%}
    cast({{ utc_to_local(col, var("business_timezone")) }} as date)
{%- endmacro %}

{#- First instant after the as-of business day, in UTC: data at or after it is not used. -#}
{% macro as_of_end_utc() -%}
    {{ local_to_utc("cast(date '" ~ var("as_of_date") ~ "' + interval 1 day as timestamp)", var("business_timezone")) }}
{%- endmacro %}

{% macro as_of_date() -%}
    date '{{ var("as_of_date") }}'
{%- endmacro %}

{#- A decimal amount, null when the text is not a number. -#}
{% macro parse_amount(col) -%}
    try_cast({{ clean_text(col) }} as decimal(18, 2))
{%- endmacro %}

{#- Booleans as people write them; anything else is null (unknown). -#}
{% macro parse_bool(col) -%}
    case
        when lower(trim({{ col }})) in ('true', 't', 'yes', 'y', '1') then true
        when lower(trim({{ col }})) in ('false', 'f', 'no', 'n', '0') then false
    end
{%- endmacro %}

{#- A timestamp later than the file that holds it was last written (plus a tolerance for
    clock skew) cannot be true: a defect, not an early arrival. Judged against the file, not
    the as-of date, so a backfill of a past date does not call later data "future". -#}
{% macro is_future(col) -%}
    {{ col }} > _file_modified_at + interval '{{ var("quality_future_tolerance_hours") }} hours'
{%- endmacro %}
