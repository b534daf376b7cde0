{#- raw = staged + duplicate + quarantined, per source, on every run. raw_rows comes from the
    landing step's own count of each file (not from dbt), so a row lost between the files and
    staging shows up here. For orders, older versions of an order count as duplicates. -#}
{%- set sources = {
    'events': 'delivery_rank',
    'orders': 'version_rank',
    'customers': 'delivery_rank',
    'campaign_touches': 'delivery_rank',
    'privacy_requests': 'delivery_rank',
} %}
with inventory as (
    select
        source,
        count(*) as files,
        sum(rows) as raw_rows
    from {{ source('landing', 'file_inventory') }}
    group by source
),

staged as (
    {%- for source, rank in sources.items() %}
        select
            '{{ source }}' as source,
            count(*) as seen_rows,
            count(*) filter (where reject_reason is null and {{ rank }} = 1) as staged_rows,
            count(*) filter (where reject_reason is null and {{ rank }} > 1) as duplicate_rows,
            count(*) filter (where reject_reason is not null) as quarantined_rows
        from {{ ref('stg_' ~ source ~ '__all') }}
        {% if not loop.last %}union all{% endif %}
    {%- endfor %}
),

final as (
    select
        {{ as_of_date() }} as as_of_date,
        staged.source,
        coalesce(inventory.files, 0) as files,
        coalesce(inventory.raw_rows, 0) as raw_rows,
        staged.staged_rows,
        staged.duplicate_rows,
        staged.quarantined_rows,
        coalesce(inventory.raw_rows, 0)
        = staged.staged_rows + staged.duplicate_rows + staged.quarantined_rows as is_reconciled
    from staged
    left join inventory on staged.source = inventory.source
)

select * from final
