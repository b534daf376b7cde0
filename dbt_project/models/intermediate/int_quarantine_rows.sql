{#- One row per raw row that breaks a contract rule, with its reason code and where it came
    from. Working database only: it may hold personal data; marts publish counts. A daily
    run (DuckDB) adds the rows of the staging builds it has not seen (macros/quarantine.sql). -#}
{{
    config(
        materialized=("incremental" if target.type == "duckdb" else "table"),
        incremental_strategy="append",
        on_schema_change="sync_all_columns",
        pre_hook="{{ forget_rewritten_quarantine_rows() }}",
        post_hook="{{ quarantine_rows_built() }}",
    )
}}
{%- set sources = quarantine_sources() %}
{%- set runs = quarantine_daily_runs(logged=true) %}
{%- if execute and runs is not none %}
    {{ log("int_quarantine_rows: adding the rows of the unseen staging builds ("
           ~ runs.values() | map('length') | sum ~ ")", info=true) }}
{%- endif %}
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
        where
            reject_reason is not null
            and {{ runs_condition(runs[source]) if runs is not none and source in runs else 'true' }}
    ),
{%- endfor %}

final as (
    {%- for source in sources %}
        select * from {{ source }}
        {% if not loop.last %}union all{% endif %}
    {%- endfor %}
)

select * from final
