{#
    The LA's SEN cohorts for assessment planning (SHARING_RULES.md, "LA's own uses"): pupils on roll in the current
    census with SEN provision E (EHC plan) or K (SEN support), with school, year group and primary need (the rank-1
    need of the latest census that recorded one, as in int_post16_pupil_details_joined).
#}
with

pupils_on_roll as (
    select * from {{ ref('int_pupils_on_roll_latest') }}
),

pupil_details as (
    select * from {{ ref('int_post16_pupil_details_joined') }}
),

sen_pupils as (
    select * from pupils_on_roll
    where sen_provision_code in ('E', 'K')
),

final as (
    select
        sen_pupils.upn::text as upn,
        case sen_pupils.sen_provision_code
            when 'E' then 'ehc_plan'
            when 'K' then 'sen_support'
        end::text as sen_cohort,
        sen_pupils.sen_provision_code::text as sen_provision_code,
        pupil_details.sen_primary_need_code::text as sen_primary_need_code,
        sen_pupils.forename::text as forename,
        sen_pupils.surname::text as surname,
        sen_pupils.date_of_birth::date as date_of_birth,
        sen_pupils.nc_year_code::text as nc_year_code,
        sen_pupils.school_urn::integer as school_urn,
        sen_pupils.school_laestab::text as school_laestab,
        sen_pupils.school_name::text as school_name,
        sen_pupils.census_reference_date::date as census_reference_date
    from sen_pupils
    left join pupil_details
        on sen_pupils.upn = pupil_details.upn
)

select * from final
