with

source as (
    select * from {{ source('ncmp', 'ncmp_measurements') }}
    where not _rejected
),

final as (
    select
        _load_batch_id || '-' || _row_number as measurement_id,
        _load_batch_id as load_batch_id,
        _row_number as source_row_number,
        upper({{ blank_as_null('upn') }}) as upn,
        {{ blank_as_null('forename') }} as forename,
        {{ blank_as_null('surname') }} as surname,
        {{ iso_date('date_of_birth') }} as date_of_birth,
        upper({{ blank_as_null('sex') }}) as sex_code,
        case when trim(school_urn) ~ '^[0-9]{1,9}$' then trim(school_urn)::integer end as school_urn,
        upper({{ blank_as_null('school_year') }}) as nc_year_code,
        {{ iso_date('measurement_date') }} as measurement_date,
        {{ as_numeric('height_cm') }} as height_cm,
        {{ as_numeric('weight_kg') }} as weight_kg,
        upper({{ blank_as_null('not_measured_reason') }}) as not_measured_reason_code,
        coalesce(upper(trim(not_measured_reason)) = 'OPTOUT', false) as is_parental_opt_out
    from source
)

select * from final
