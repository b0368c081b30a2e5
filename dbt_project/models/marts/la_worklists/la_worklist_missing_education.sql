{#
    Children missing education (SHARING_RULES.md, "LA's own uses"): a pupil of compulsory school age who left one of
    the LA's schools (a CTF the school sent, or census pupilnolongeronroll) and is on no school roll the LA can see
    once `missing_education_school_days` school days have passed since the leaving date, counted to the feed date.

    - The pupil's latest leaving is used (a CTF before a census record of the same day).
    - School days are Monday to Friday after the leaving date up to and including the feed date; holidays are not
      known (no term calendar) and count as school days, so a case surfaces early rather than late.
    - A case when the count is at least the var (10 by default: the tenth school day after leaving is a case, the
      ninth is not), and the pupil is on no roll: no registration in a current census return of another school,
      and none at the school left with an entry date on or after the leaving date (readmitted). A pupil still on
      the roll of the school they left, entered before the leaving date, left after that census: a case. The list
      is of current cases: a pupil back on a roll by the feed date, however late, is not on it.
    - Compulsory school age: completed years on the leaving date from `missing_education_min_age` to
      `missing_education_max_age`; a pupil with no known date of birth is kept (fail safe).
#}
with

leavings as (
    select * from {{ ref('int_school_leavings_unioned') }}
),

registrations as (
    select * from {{ ref('int_census_registrations_current') }}
),

current_returns as (
    select * from {{ ref('stg_census__current_returns') }}
),

school_age_leavings as (
    select * from leavings
    where
        date_of_birth is null
        or {{ age_in_years('date_of_birth', 'leaving_date') }}
        between {{ var('missing_education_min_age') }} and {{ var('missing_education_max_age') }}
),

latest_leavings as (
    select distinct on (upn) *
    from school_age_leavings
    order by
        upn,
        leaving_date desc,
        case leaving_source when 'ctf' then 1 else 2 end,
        load_batch_id desc,
        source_record_id
),

counted as (
    select
        latest_leavings.*,
        (
            select count(*)
            from generate_series(
                latest_leavings.leaving_date + 1, {{ feed_date() }}, interval '1 day'
            ) as days (day)
            where extract(isodow from days.day) between 1 and 5
        )::integer as school_days_since_leaving
    from latest_leavings
),

registration_schools as (
    select
        registrations.upn as upn,
        registrations.entry_date as entry_date,
        current_returns.school_laestab as school_laestab
    from registrations
    left join current_returns
        on registrations.load_batch_id = current_returns.load_batch_id
        and registrations.school_census_table_id = current_returns.school_census_table_id
),

back_on_roll as (
    select distinct counted.upn as upn
    from counted
    inner join registration_schools
        on counted.upn = registration_schools.upn
    where
        registration_schools.school_laestab is distinct from counted.school_laestab
        or registration_schools.entry_date >= counted.leaving_date
),

final as (
    select
        counted.upn::text as upn,
        counted.forename::text as forename,
        counted.surname::text as surname,
        counted.date_of_birth::date as date_of_birth,
        counted.school_laestab::text as left_school_laestab,
        counted.school_name::text as left_school_name,
        counted.leaving_date::date as leaving_date,
        counted.leaving_source::text as leaving_source,
        counted.destination_la_code::text as destination_la_code,
        counted.destination_estab::text as destination_estab,
        counted.school_days_since_leaving::integer as school_days_since_leaving,
        {{ var('missing_education_school_days') }}::integer as school_days_threshold,
        {{ feed_date() }}::date as feed_date
    from counted
    left join back_on_roll
        on counted.upn = back_on_roll.upn
    where
        back_on_roll.upn is null
        and counted.school_days_since_leaving >= {{ var('missing_education_school_days') }}
)

select * from final
