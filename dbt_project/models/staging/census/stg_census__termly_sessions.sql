with

on_roll_pupils as (
    {{ census_current_rows('census_pupilonroll', 'pupilonroll') }}
),

off_roll_pupils as (
    {{ census_current_rows('census_pupilnolongeronroll', 'pupilnolongeronroll') }}
),

unioned as (
    select
        true as is_on_roll,
        pupilonrolltableid as pupilonrolltableid,
        null::text as pupilnolongeronrolltableid,
        upn,
        termlysessionspossible, termlysessionsauthorised, termlysessionsunauthorised, termlysessionseducational,
        termlysessionsexceptional, annualsessionspossible, annualsessionsauthorised, annualsessionsunauthorised,
        _load_batch_id, _row_number, _schoolcensus_table_id, _laestab, _census_term, _census_year, _reference_date
    from on_roll_pupils
    union all
    select
        false as is_on_roll,
        null::text as pupilonrolltableid,
        pupilnolongeronrolltableid as pupilnolongeronrolltableid,
        upn,
        termlysessionspossible, termlysessionsauthorised, termlysessionsunauthorised, termlysessionseducational,
        termlysessionsexceptional, annualsessionspossible, annualsessionsauthorised, annualsessionsunauthorised,
        _load_batch_id, _row_number, _schoolcensus_table_id, _laestab, _census_term, _census_year, _reference_date
    from off_roll_pupils
),

final as (
    select
        is_on_roll as is_on_roll,
        {{ blank_as_null('pupilonrolltableid') }} as pupil_on_roll_table_id,
        {{ blank_as_null('pupilnolongeronrolltableid') }} as pupil_off_roll_table_id,
        {{ census_return_columns() }},
        upper({{ blank_as_null('upn') }}) as upn,
        {{ census_integer('termlysessionspossible') }} as termly_sessions_possible,
        {{ census_integer('termlysessionsauthorised') }} as termly_sessions_authorised_absence,
        {{ census_integer('termlysessionsunauthorised') }} as termly_sessions_unauthorised_absence,
        {{ census_integer('termlysessionseducational') }} as termly_sessions_approved_educational,
        {{ census_integer('termlysessionsexceptional') }} as termly_sessions_exceptional,
        {{ census_integer('annualsessionspossible') }} as annual_sessions_possible,
        {{ census_integer('annualsessionsauthorised') }} as annual_sessions_authorised_absence,
        {{ census_integer('annualsessionsunauthorised') }} as annual_sessions_unauthorised_absence
    from unioned
)

select * from final
