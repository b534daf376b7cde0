with quarantine as (
    select * from {{ ref('int_quarantine_rows') }}
),

-- the example is the first quarantined row by file and row: the same one on every run
ranked as (
    select
        *,
        row_number() over (
            partition by source, reason order by file, file_row, record_id
        ) as example_rank
    from quarantine
),

final as (
    select
        {{ as_of_date() }} as as_of_date,
        source,
        reason,
        count(*) as rows,
        min(case when example_rank = 1 then file end) as example_file,
        min(case when example_rank = 1 then file_row end) as example_row,
        min(case when example_rank = 1 then record_id end) as example_record_id
    from ranked
    group by source, reason
)

select * from final
