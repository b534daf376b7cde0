with quarantine as (
    select * from {{ ref('int_quarantine_rows') }}
),

final as (
    select
        {{ as_of_date() }} as as_of_date,
        source,
        reason,
        count(*) as rows,
        min(file) as example_file,
        arg_min(file_row, file) as example_row,
        arg_min(record_id, file) as example_record_id
    from quarantine
    group by source, reason
)

select * from final
