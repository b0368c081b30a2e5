{#-
    Sessions possible and missed, and persistently absent pupils, per school and academic year, from the termly
    session counts of every current census return (pupils on roll and no longer on roll). Rules: docs block
    `stats_pupil_absence`; time period: docs block `academic_year_of_census`.
-#}

with

termly_sessions as (
    select * from {{ ref('stg_census__termly_sessions') }}
),

school_returns as (
    select * from {{ ref('stg_census__school_returns') }}
),

schools as (
    select * from {{ ref('int_census_schools_current') }}
),

sessions_placed as (
    -- a row without sessions possible reports no attendance; a return without a URN cannot be placed
    select
        {{ academic_year_period('termly_sessions.census_reference_date') }} as time_period,
        school_returns.school_urn as school_urn,
        coalesce(
            termly_sessions.upn,
            'row-' || termly_sessions.load_batch_id || '-' || termly_sessions.source_row_number
        ) as pupil_key,
        termly_sessions.termly_sessions_possible as sessions_possible,
        coalesce(termly_sessions.termly_sessions_authorised_absence, 0) as sessions_authorised,
        coalesce(termly_sessions.termly_sessions_unauthorised_absence, 0) as sessions_unauthorised
    from termly_sessions
    inner join school_returns
        on termly_sessions.load_batch_id = school_returns.load_batch_id
        and termly_sessions.school_census_table_id = school_returns.school_census_table_id
    where
        termly_sessions.termly_sessions_possible is not null
        and termly_sessions.census_reference_date is not null
        and school_returns.school_urn is not null
),

pupil_sessions as (
    -- one row per pupil per school per year: the terms of every census of the year added up
    select
        time_period as time_period,
        school_urn as school_urn,
        pupil_key as pupil_key,
        sum(sessions_possible) as sessions_possible,
        sum(sessions_authorised) as sessions_authorised,
        sum(sessions_unauthorised) as sessions_unauthorised
    from sessions_placed
    group by time_period, school_urn, pupil_key
),

school_sessions as (
    select
        time_period as time_period,
        school_urn as school_urn,
        count(*) filter (where sessions_possible > 0) as pupils_enrolled,
        count(*) filter (
            where sessions_possible > 0 and (sessions_authorised + sessions_unauthorised) * 10 >= sessions_possible
        ) as pupils_persistently_absent,
        sum(sessions_possible) as sessions_possible,
        sum(sessions_authorised) as sessions_authorised,
        sum(sessions_unauthorised) as sessions_unauthorised
    from pupil_sessions
    group by time_period, school_urn
),

final as (
    select
        school_sessions.time_period::text as time_period,
        'Academic year'::text as time_identifier,
        school_sessions.school_urn::integer as school_urn,
        schools.school_laestab::text as school_laestab,
        schools.school_name::text as school_name,
        schools.school_phase::text as school_phase,
        school_sessions.pupils_enrolled::integer as pupils_enrolled,
        school_sessions.pupils_persistently_absent::integer as pupils_persistently_absent,
        school_sessions.sessions_possible::integer as sessions_possible,
        school_sessions.sessions_authorised::integer as sessions_authorised,
        school_sessions.sessions_unauthorised::integer as sessions_unauthorised,
        (school_sessions.sessions_authorised + school_sessions.sessions_unauthorised)::integer as sessions_overall
    from school_sessions
    inner join schools
        on school_sessions.school_urn = schools.school_urn
)

select * from final
