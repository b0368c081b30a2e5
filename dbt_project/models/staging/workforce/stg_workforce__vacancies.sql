with

source as (
    select * from {{ source('workforce', 'swc_vacancies') }}
    where not _rejected
),

final as (
    select
        _load_batch_id as load_batch_id,
        _row_number as source_row_number,
        {{ blank_as_null('lea') }} || {{ blank_as_null('estab') }} as school_laestab,
        {{ blank_as_null('vacancy_id') }} as vacancy_id,
        upper({{ blank_as_null('post') }}) as post_code,
        upper({{ blank_as_null('tenure') }}) as tenure_code,
        {{ blank_as_null('subject') }} as subject_name,
        {{ as_boolean('temporarily_filled') }} as is_temporarily_filled
    from source
)

select * from final
