with

source as (
    select * from {{ source('workforce', 'swc_contracts') }}
    where not _rejected
),

final as (
    select
        _load_batch_id as load_batch_id,
        _row_number as source_row_number,
        {{ blank_as_null('lea') }} || {{ blank_as_null('estab') }} as school_laestab,
        {{ blank_as_null('staff_id') }} as staff_id,
        {{ blank_as_null('contract_id') }} as contract_id,
        upper({{ blank_as_null('contract_type') }}) as contract_type_code,
        upper({{ blank_as_null('role') }}) as role_code,
        {{ iso_date('start_date') }} as contract_start_date,
        {{ iso_date('end_date') }} as contract_end_date,
        {{ as_numeric('fte') }} as full_time_equivalent,
        {{ as_numeric('hours_per_week') }} as hours_per_week
    from source
)

select * from final
