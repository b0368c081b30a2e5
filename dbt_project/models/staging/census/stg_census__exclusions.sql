with

on_roll_exclusions as (
    {{ census_current_rows('census_termlyexclusionsonroll', 'termlyexclusionsonroll', 'pupilonroll') }}
),

off_roll_exclusions as (
    {{ census_current_rows('census_termlyexclusionsoffroll', 'termlyexclusionsoffroll', 'pupilnolongeronroll') }}
),

unioned as (
    select
        true as is_on_roll,
        termlyexclusionsonrolltableid as exclusion_table_id,
        pupilonrolltableid as pupilonrolltableid,
        null::text as pupilnolongeronrolltableid,
        startdate, sessions, category, reason, reason1, reason2, reason3, senprovision, reviewdate, reviewresult,
        reinstatementdate, senexpert,
        _load_batch_id, _row_number, _schoolcensus_table_id, _laestab, _census_term, _census_year, _reference_date
    from on_roll_exclusions
    union all
    select
        false as is_on_roll,
        termlyexclusionsoffrolltableid as exclusion_table_id,
        null::text as pupilonrolltableid,
        pupilnolongeronrolltableid as pupilnolongeronrolltableid,
        startdate, sessions, category, reason, reason1, reason2, reason3, senprovision, reviewdate, reviewresult,
        reinstatementdate, senexpert,
        _load_batch_id, _row_number, _schoolcensus_table_id, _laestab, _census_term, _census_year, _reference_date
    from off_roll_exclusions
),

final as (
    select
        {{ blank_as_null('exclusion_table_id') }} as exclusion_table_id,
        is_on_roll as is_on_roll,
        {{ blank_as_null('pupilonrolltableid') }} as pupil_on_roll_table_id,
        {{ blank_as_null('pupilnolongeronrolltableid') }} as pupil_off_roll_table_id,
        {{ census_return_columns() }},
        {{ census_date('startdate') }} as exclusion_start_date,
        {{ census_integer('sessions') }} as excluded_sessions,
        upper({{ blank_as_null('category') }}) as exclusion_category_code,
        -- Autumn sends one reason (`reason`), Spring and Summer up to three (`reason1`..`reason3`)
        upper(coalesce({{ blank_as_null('reason1') }}, {{ blank_as_null('reason') }})) as exclusion_reason_1_code,
        upper({{ blank_as_null('reason2') }}) as exclusion_reason_2_code,
        upper({{ blank_as_null('reason3') }}) as exclusion_reason_3_code,
        upper({{ blank_as_null('senprovision') }}) as sen_provision_code,
        {{ census_date('reviewdate') }} as review_date,
        upper({{ blank_as_null('reviewresult') }}) as review_result_code,
        {{ census_date('reinstatementdate') }} as reinstatement_date,
        case upper({{ blank_as_null('senexpert') }})
            when 'Y' then true
            when 'N' then false
        end as has_sen_expert
    from unioned
)

select * from final
