{#
    Suspensions and permanent exclusions (SHARING_RULES.md, "LA's own uses"): every exclusion in the census termly
    exclusions of the current returns, for pupils on roll and no longer on roll, with the pupil's UPN and name
    through the registration the row hangs from.
#}
with

exclusions as (
    select * from {{ ref('stg_census__exclusions') }}
),

on_roll_pupils as (
    select * from {{ ref('stg_census__pupils') }}
),

off_roll_pupils as (
    select * from {{ ref('stg_census__off_roll_pupils') }}
),

pupils as (
    select
        true as is_on_roll,
        load_batch_id,
        pupil_on_roll_table_id as pupil_table_id,
        upn,
        forename,
        surname,
        date_of_birth
    from on_roll_pupils
    union all
    select
        false as is_on_roll,
        load_batch_id,
        pupil_off_roll_table_id as pupil_table_id,
        upn,
        forename,
        surname,
        date_of_birth
    from off_roll_pupils
),

final as (
    select
        exclusions.load_batch_id::bigint as load_batch_id,
        exclusions.is_on_roll::boolean as is_on_roll,
        exclusions.exclusion_table_id::text as exclusion_table_id,
        pupils.upn::text as upn,
        exclusions.exclusion_category_code::text as exclusion_category_code,
        (exclusions.exclusion_category_code = 'PERM')::boolean as is_permanent_exclusion,
        exclusions.exclusion_start_date::date as exclusion_start_date,
        exclusions.excluded_sessions::integer as excluded_sessions,
        exclusions.exclusion_reason_1_code::text as exclusion_reason_1_code,
        exclusions.exclusion_reason_2_code::text as exclusion_reason_2_code,
        exclusions.exclusion_reason_3_code::text as exclusion_reason_3_code,
        exclusions.sen_provision_code::text as sen_provision_code,
        pupils.forename::text as forename,
        pupils.surname::text as surname,
        pupils.date_of_birth::date as date_of_birth,
        exclusions.school_laestab::text as school_laestab,
        exclusions.census_term_code::text as census_term_code,
        exclusions.census_year::integer as census_year
    from exclusions
    left join pupils
        on exclusions.load_batch_id = pupils.load_batch_id
        and exclusions.is_on_roll = pupils.is_on_roll
        and coalesce(exclusions.pupil_on_roll_table_id, exclusions.pupil_off_roll_table_id) = pupils.pupil_table_id
)

select * from final
