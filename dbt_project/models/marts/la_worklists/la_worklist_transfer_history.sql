{#
    Each pupil's transfer history (SHARING_RULES.md, "LA's own uses"): every school spell and move the returns
    record, in date order. Four sources, each kept as a row of its own so the LA can see which return says what:
    - `ctf_school_history`: a school in a CTF's SchoolHistory (entry and leaving dates);
    - `ctf_transfer`: the CTF itself, from the sending school (leaving on the file's date) to its destination;
    - `census_on_roll`: a registration on a school's current census roll (entry date, no leaving date);
    - `census_off_roll`: a census pupilnolongeronroll row (entry and leaving dates).
    Identical rows (the same spell in two files) are kept once.
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

registrations as (
    select * from {{ ref('int_census_registrations_current') }}
),

current_returns as (
    select * from {{ ref('stg_census__current_returns') }}
),

schools as (
    select * from {{ ref('stg_census__schools') }}
),

off_roll_pupils as (
    select * from {{ ref('stg_census__off_roll_pupils') }}
),

ctf_history_spells as (
    select
        upn as upn,
        'ctf_school_history' as record_source,
        school_laestab as school_laestab,
        school_name as school_name,
        entry_date as entry_date,
        leaving_date as leaving_date,
        null::text as destination_la_code,
        null::text as destination_estab
    from ctf_school_histories
),

ctf_transfers as (
    select
        ctf_pupils.upn as upn,
        'ctf_transfer' as record_source,
        ctf_files.source_laestab as school_laestab,
        ctf_files.source_school_name as school_name,
        null::date as entry_date,
        ctf_files.ctf_date as leaving_date,
        ctf_files.destination_la_code as destination_la_code,
        ctf_files.destination_estab as destination_estab
    from ctf_pupils
    inner join ctf_files
        on ctf_pupils.load_batch_id = ctf_files.load_batch_id
),

census_on_roll_spells as (
    select
        registrations.upn as upn,
        'census_on_roll' as record_source,
        current_returns.school_laestab as school_laestab,
        schools.school_name as school_name,
        registrations.entry_date as entry_date,
        null::date as leaving_date,
        null::text as destination_la_code,
        null::text as destination_estab
    from registrations
    left join current_returns
        on registrations.load_batch_id = current_returns.load_batch_id
        and registrations.school_census_table_id = current_returns.school_census_table_id
    left join schools
        on registrations.load_batch_id = schools.load_batch_id
        and registrations.school_census_table_id = schools.school_census_table_id
),

census_off_roll_spells as (
    select
        off_roll_pupils.upn as upn,
        'census_off_roll' as record_source,
        off_roll_pupils.school_laestab as school_laestab,
        schools.school_name as school_name,
        off_roll_pupils.entry_date as entry_date,
        off_roll_pupils.leaving_date as leaving_date,
        null::text as destination_la_code,
        null::text as destination_estab
    from off_roll_pupils
    left join schools
        on off_roll_pupils.load_batch_id = schools.load_batch_id
        and off_roll_pupils.school_census_table_id = schools.school_census_table_id
),

unioned as (
    select * from ctf_history_spells
    union
    select * from ctf_transfers
    union
    select * from census_on_roll_spells
    union
    select * from census_off_roll_spells
),

final as (
    select
        upn::text as upn,
        row_number() over (
            partition by upn
            order by
                coalesce(entry_date, leaving_date) nulls last,
                leaving_date nulls last,
                record_source,
                school_laestab,
                school_name,
                destination_la_code,
                destination_estab
        )::integer as transfer_sequence,
        record_source::text as record_source,
        school_laestab::text as school_laestab,
        school_name::text as school_name,
        entry_date::date as entry_date,
        leaving_date::date as leaving_date,
        destination_la_code::text as destination_la_code,
        destination_estab::text as destination_estab
    from unioned
    where upn is not null
)

select * from final
