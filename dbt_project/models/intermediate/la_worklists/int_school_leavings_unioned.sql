{#
    Every record of a pupil leaving one of the LA's schools (a school with a current census return): a Common
    Transfer File the school sent, and a pupil in a census return's `pupilnolongeronroll`. The leaving date of a CTF
    is the sending school's LeavingDate in the pupil's school history, else the file's date. A CTF to a named school
    in another LA is left out: that pupil is on a roll the other LA sees (docs/policy.md, "LA worklists").
#}
with

ctf_files as (
    select * from {{ ref('stg_ctf__files') }}
),

ctf_pupils as (
    select * from {{ ref('stg_ctf__pupils') }}
),

ctf_school_histories as (
    select * from {{ ref('stg_ctf__school_histories') }}
),

off_roll_pupils as (
    select * from {{ ref('stg_census__off_roll_pupils') }}
),

schools as (
    select * from {{ ref('stg_census__schools') }}
),

current_returns as (
    select * from {{ ref('stg_census__current_returns') }}
),

la_schools as (
    select distinct school_laestab from current_returns
),

la_codes as (
    select distinct left(school_laestab, 3) as la_code from current_returns
),

ctf_leaving_dates as (
    -- the sending school's leaving date in the pupil's own school history (the latest, when it has several)
    select distinct on (ctf_school_histories.load_batch_id, ctf_school_histories.pupil_ordinal)
        ctf_school_histories.load_batch_id as load_batch_id,
        ctf_school_histories.pupil_ordinal as pupil_ordinal,
        ctf_school_histories.leaving_date as leaving_date
    from ctf_school_histories
    inner join ctf_files
        on ctf_school_histories.load_batch_id = ctf_files.load_batch_id
        and ctf_school_histories.school_laestab = ctf_files.source_laestab
    where ctf_school_histories.leaving_date is not null
    order by
        ctf_school_histories.load_batch_id,
        ctf_school_histories.pupil_ordinal,
        ctf_school_histories.leaving_date desc
),

ctf_leavings as (
    select
        'ctf' as leaving_source,
        ctf_pupils.load_batch_id as load_batch_id,
        ctf_pupils.pupil_ordinal::text as source_record_id,
        ctf_pupils.upn as upn,
        ctf_pupils.forename as forename,
        ctf_pupils.surname as surname,
        ctf_pupils.date_of_birth as date_of_birth,
        ctf_files.source_laestab as school_laestab,
        ctf_files.source_school_name as school_name,
        coalesce(ctf_leaving_dates.leaving_date, ctf_files.ctf_date) as leaving_date,
        ctf_files.destination_la_code as destination_la_code,
        ctf_files.destination_estab as destination_estab
    from ctf_pupils
    inner join ctf_files
        on ctf_pupils.load_batch_id = ctf_files.load_batch_id
    inner join la_schools
        on ctf_files.source_laestab = la_schools.school_laestab
    left join ctf_leaving_dates
        on ctf_pupils.load_batch_id = ctf_leaving_dates.load_batch_id
        and ctf_pupils.pupil_ordinal = ctf_leaving_dates.pupil_ordinal
    where not (
        ctf_files.destination_laestab is not null
        and left(ctf_files.destination_laestab, 3) not in (select la_codes.la_code from la_codes)
    )
),

census_leavings as (
    select
        'census_off_roll' as leaving_source,
        off_roll_pupils.load_batch_id as load_batch_id,
        off_roll_pupils.pupil_off_roll_table_id as source_record_id,
        off_roll_pupils.upn as upn,
        off_roll_pupils.forename as forename,
        off_roll_pupils.surname as surname,
        off_roll_pupils.date_of_birth as date_of_birth,
        off_roll_pupils.school_laestab as school_laestab,
        schools.school_name as school_name,
        off_roll_pupils.leaving_date as leaving_date,
        null::text as destination_la_code,
        null::text as destination_estab
    from off_roll_pupils
    left join schools
        on off_roll_pupils.load_batch_id = schools.load_batch_id
        and off_roll_pupils.school_census_table_id = schools.school_census_table_id
),

unioned as (
    select * from ctf_leavings
    union all
    select * from census_leavings
),

final as (
    select * from unioned
    -- a record without a UPN or a leaving date cannot be followed up against the rolls
    where upn is not null and leaving_date is not null
)

select * from final
