with

source as (
    {{ census_rows_kept('census_pupilonroll', 'pupilonroll') }}
),

final as (
    select
        {{ blank_as_null('pupilonrolltableid') }} as pupil_on_roll_table_id,
        {{ blank_as_null('schoolcensustableid') }} as school_census_table_id,
        _load_batch_id as load_batch_id,
        _row_number as source_row_number,
        upper({{ blank_as_null('upn') }}) as upn,
        upper({{ blank_as_null('formerupn') }}) as former_upn,
        {{ blank_as_null('uniquelearnernumber') }} as unique_learner_number,
        {{ blank_as_null('forename') }} as forename,
        {{ blank_as_null('middlenames') }} as middle_names,
        {{ blank_as_null('surname') }} as surname,
        {{ blank_as_null('preferredsurname') }} as preferred_surname,
        {{ census_date('dob') }} as date_of_birth,
        upper({{ blank_as_null('sex') }}) as sex_code,
        upper({{ blank_as_null('ncyearactual') }}) as nc_year_code,
        upper({{ blank_as_null('enrolstatus') }}) as enrol_status_code,
        case lower({{ blank_as_null('yssa') }})
            when 'yes' then 'Yes'
            when 'no' then 'No'
            when 'uns' then 'UNS'
            when 'snr' then 'SNR'
            else {{ blank_as_null('yssa') }}
        end as yssa_code,
        upper({{ blank_as_null('senprovision') }}) as sen_provision_code,
        upper({{ blank_as_null('language') }}) as language_code,
        {{ census_date('entrydate') }} as entry_date
    from source
)

select * from final
