with

source as (
    select * from {{ source('workforce', 'swc_absences') }}
    where not _rejected
),

final as (
    select
        _load_batch_id || '-' || _row_number as absence_id,
        _load_batch_id as load_batch_id,
        _row_number as source_row_number,
        {{ blank_as_null('lea') }} || {{ blank_as_null('estab') }} as school_laestab,
        {{ blank_as_null('staff_id') }} as staff_id,
        {{ iso_date('first_day') }} as absence_first_date,
        {{ iso_date('last_day') }} as absence_last_date,
        {{ as_numeric('working_days_lost') }} as working_days_lost,
        upper({{ blank_as_null('absence_category') }}) as absence_category_code
    from source
)

select * from final
