with

source as (
    {{ census_current_rows('census_pupilnolongeronroll', 'pupilnolongeronroll') }}
),

final as (
    select
        {{ blank_as_null('pupilnolongeronrolltableid') }} as pupil_off_roll_table_id,
        {{ census_return_columns() }},
        upper({{ blank_as_null('upn') }}) as upn,
        upper({{ blank_as_null('formerupn') }}) as former_upn,
        {{ blank_as_null('uniquelearnernumber') }} as unique_learner_number,
        {{ blank_as_null('forename') }} as forename,
        {{ blank_as_null('middlenames') }} as middle_names,
        {{ blank_as_null('surname') }} as surname,
        {{ blank_as_null('formersurname') }} as former_surname,
        {{ census_date('dob') }} as date_of_birth,
        upper({{ blank_as_null('sex') }}) as sex_code,
        upper({{ blank_as_null('ethnicity') }}) as ethnicity_code,
        upper({{ blank_as_null('language') }}) as language_code,
        upper({{ blank_as_null('ncyearleaving') }}) as nc_year_leaving_code,
        {{ census_date('entrydate') }} as entry_date,
        {{ census_date('leavingdate') }} as leaving_date,
        case trim(parttime)
            when '1' then true
            when '0' then false
        end as is_part_time,
        upper({{ blank_as_null('boarder') }}) as boarder_code
    from source
)

select * from final
