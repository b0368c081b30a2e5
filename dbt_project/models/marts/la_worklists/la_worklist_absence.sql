{#
    Persistent and severe absence (SHARING_RULES.md, "LA's own uses"): for every pupil registration on roll in a
    current census return, the sessions missed in the term the return covers (the census termly session details
    whose attendance code is absence, var `absence_reason_codes`) out of the sessions possible (`pupilonroll`
    termlysessionspossible). Listed when the pupil missed `persistent_absence_percent` (10) percent or more;
    `severe_absence_percent` (50) percent or more is severe. The boundary is in: exactly 10% is persistent and
    exactly 50% severe. Compared in whole numbers (missed x 100 >= possible x percent), so no rounding can move a
    pupil across a boundary. A registration with no possible sessions is not rated.
#}
with

termly_sessions as (
    select * from {{ ref('stg_census__termly_sessions') }}
),

session_absences as (
    select * from {{ ref('stg_census__session_absences') }}
),

registrations as (
    select * from {{ ref('stg_census__pupils') }}
),

sessions_missed as (
    select
        load_batch_id as load_batch_id,
        pupil_on_roll_table_id as pupil_on_roll_table_id,
        sum(sessions)::integer as sessions_missed
    from session_absences
    where
        is_on_roll
        and attendance_reason_code in ({{ sql_text_list(var('absence_reason_codes')) }})
    group by load_batch_id, pupil_on_roll_table_id
),

rated as (
    select
        termly_sessions.*,
        coalesce(sessions_missed.sessions_missed, 0) as sessions_missed
    from termly_sessions
    left join sessions_missed
        on termly_sessions.load_batch_id = sessions_missed.load_batch_id
        and termly_sessions.pupil_on_roll_table_id = sessions_missed.pupil_on_roll_table_id
    where termly_sessions.is_on_roll and termly_sessions.termly_sessions_possible > 0
),

persistent as (
    select
        rated.*,
        rated.sessions_missed * 100
        >= rated.termly_sessions_possible * {{ var('severe_absence_percent') }} as is_severe_absence
    from rated
    where rated.sessions_missed * 100 >= rated.termly_sessions_possible * {{ var('persistent_absence_percent') }}
),

final as (
    select
        persistent.load_batch_id::bigint as load_batch_id,
        persistent.pupil_on_roll_table_id::text as pupil_on_roll_table_id,
        persistent.upn::text as upn,
        case when persistent.is_severe_absence then 'severe' else 'persistent' end::text as absence_band,
        persistent.is_severe_absence::boolean as is_severe_absence,
        persistent.sessions_missed::integer as sessions_missed,
        persistent.termly_sessions_possible::integer as sessions_possible,
        round(100.0 * persistent.sessions_missed / persistent.termly_sessions_possible, 2)::numeric(6, 2)
            as absence_percent,
        registrations.forename::text as forename,
        registrations.surname::text as surname,
        registrations.date_of_birth::date as date_of_birth,
        registrations.nc_year_code::text as nc_year_code,
        persistent.school_laestab::text as school_laestab,
        persistent.census_term_code::text as census_term_code,
        persistent.census_year::integer as census_year,
        persistent.census_reference_date::date as census_reference_date
    from persistent
    left join registrations
        on persistent.load_batch_id = registrations.load_batch_id
        and persistent.pupil_on_roll_table_id = registrations.pupil_on_roll_table_id
)

select * from final
