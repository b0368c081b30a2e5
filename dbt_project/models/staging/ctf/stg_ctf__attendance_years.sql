with

flattened as (
    {{ ctf_pupil_items('attendance') }}
),

final as (
    select
        _load_batch_id as load_batch_id,
        _row_number as pupil_ordinal,
        item_ordinal as attendance_year_ordinal,
        upper({{ blank_as_null('upn') }}) as upn,
        {{ census_integer("item ->> 'Year'") }} as attendance_year,
        {{ blank_as_null("item ->> 'LEA'") }} as school_la_code,
        {{ blank_as_null("item ->> 'Estab'") }} as school_estab,
        {{ blank_as_null("item ->> 'LEA'") }} || {{ blank_as_null("item ->> 'Estab'") }} as school_laestab,
        {{ census_integer("item ->> 'SessionsPossible'") }} as sessions_possible,
        {{ census_integer("item ->> 'SessionsAuthorised'") }} as sessions_authorised_absence,
        {{ census_integer("item ->> 'SessionsUnauthorised'") }} as sessions_unauthorised_absence
    from flattened
)

select * from final
