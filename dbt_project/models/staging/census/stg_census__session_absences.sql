with

on_roll_sessions as (
    {{ census_current_rows('census_termlysessiondetailsonroll', 'termlysessiondetailsonroll', 'pupilonroll') }}
),

off_roll_sessions as (
    {{ census_current_rows('census_termlysessiondetailsoffroll', 'termlysessiondetailsoffroll', 'pupilnolongeronroll') }}
),

unioned as (
    select
        true as is_on_roll,
        termlysessiondetailsonrolltableid as session_detail_table_id,
        pupilonrolltableid as pupilonrolltableid,
        null::text as pupilnolongeronrolltableid,
        sessions, attendancereason,
        _load_batch_id, _row_number, _schoolcensus_table_id, _laestab, _census_term, _census_year, _reference_date
    from on_roll_sessions
    union all
    select
        false as is_on_roll,
        termlysessiondetailsoffrolltableid as session_detail_table_id,
        null::text as pupilonrolltableid,
        pupilnolongeronrolltableid as pupilnolongeronrolltableid,
        sessions, attendancereason,
        _load_batch_id, _row_number, _schoolcensus_table_id, _laestab, _census_term, _census_year, _reference_date
    from off_roll_sessions
),

final as (
    select
        {{ blank_as_null('session_detail_table_id') }} as session_detail_table_id,
        is_on_roll as is_on_roll,
        {{ blank_as_null('pupilonrolltableid') }} as pupil_on_roll_table_id,
        {{ blank_as_null('pupilnolongeronrolltableid') }} as pupil_off_roll_table_id,
        {{ census_return_columns() }},
        {{ census_integer('sessions') }} as sessions,
        -- attendance codes are case-sensitive symbols ('/', '\', '#') and capitals: kept as sent, trimmed
        {{ blank_as_null('attendancereason') }} as attendance_reason_code
    from unioned
)

select * from final
