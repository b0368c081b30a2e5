with

source as (
    select * from {{ source('workforce', 'swc_staff') }}
    where not _rejected
),

final as (
    select
        _load_batch_id as load_batch_id,
        _row_number as source_row_number,
        {{ blank_as_null('lea') }} || {{ blank_as_null('estab') }} as school_laestab,
        {{ blank_as_null('staff_id') }} as staff_id,
        {{ blank_as_null('teacher_reference_number') }} as teacher_reference_number,
        upper({{ blank_as_null('gender') }}) as gender_code,
        {{ iso_date('date_of_birth') }} as date_of_birth,
        upper({{ blank_as_null('ethnicity') }}) as ethnicity_code,
        {{ as_boolean('qt_status') }} as has_qualified_teacher_status
    from source
)

select * from final
