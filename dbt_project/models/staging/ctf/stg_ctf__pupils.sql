with

source as (
    select * from {{ source('ctf', 'ctf_pupils') }}
    where not _rejected
),

final as (
    select
        _load_batch_id as load_batch_id,
        _row_number as pupil_ordinal,
        upper({{ blank_as_null('upn') }}) as upn,
        {{ blank_as_null('forename') }} as forename,
        {{ blank_as_null('middle_names') }} as middle_names,
        {{ blank_as_null('surname') }} as surname,
        {{ blank_as_null('preferred_surname') }} as preferred_surname,
        {{ iso_date('dob') }} as date_of_birth,
        upper({{ blank_as_null('sex') }}) as sex_code,
        upper({{ blank_as_null('nc_year_actual') }}) as nc_year_code,
        upper({{ blank_as_null('ethnicity') }}) as ethnicity_code,
        upper({{ blank_as_null('first_language') }}) as language_code,
        upper({{ blank_as_null('enrol_status') }}) as enrol_status_code,
        case when trim(uprn) ~ '^[0-9]{1,12}$' then trim(uprn)::bigint end as uprn,
        {{ blank_as_null('saon') }} as saon,
        {{ blank_as_null('paon') }} as paon,
        {{ blank_as_null('street') }} as street,
        {{ blank_as_null('locality') }} as locality,
        {{ blank_as_null('town') }} as town,
        {{ blank_as_null('administrative_area') }} as administrative_area,
        {{ blank_as_null('post_town') }} as post_town,
        regexp_replace(upper({{ blank_as_null('postcode') }}), '\s+', ' ', 'g') as postcode
    from source
)

select * from final
