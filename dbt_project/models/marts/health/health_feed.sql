{#
    The health feed (recipients.yml `health`): NCMP feedback to parents. Reception and Year 6 children (var
    `health_nc_years`) whose latest NCMP row (int_ncmp_measurements_classified) is a measurement taken in the
    academic year of the feed date, on or before the feed date, that rcpchgrowth could classify. A child whose
    latest row says they were not measured - the NCMP opt-out (OPTOUT) among the reasons - is not here: an opt-out
    means the child is not measured. A pseudonymised row (retention: UPN `PSN-...`, no name) is never here.

    Identity for the letter: name, date of birth and sex as the NCMP export holds them, the school the child was
    measured at (name from its current census return), the home address from the child's current census
    registration (null when the child is no longer on a census roll). Values as the letter shows them: BMI to one
    decimal place, SDS to two, the centile to one decimal place rounded towards the 50th centile, so the centile
    shown always falls in the category shown (84.96 is shown 84.9, healthy weight; 2.04 is shown 2.1, healthy
    weight). The category is from the unrounded centile.
#}
with

classified as (
    select * from {{ ref('int_ncmp_measurements_classified') }}
),

pupils_on_roll as (
    select * from {{ ref('int_pupils_on_roll_latest') }}
),

schools as (
    select * from {{ ref('int_census_schools_current') }}
),

measured_this_year as (
    select *
    from classified
    where
        is_latest_for_child
        and is_measured
        and bmi_category_code is not null
        and nc_year_code in ({{ sql_text_list(var('health_nc_years')) }})
        and measurement_date <= {{ feed_date() }}
        and ncmp_time_period = {{ academic_year_period(feed_date()) }}
        and upn not like 'PSN-%'
),

final as (
    select
        measured_this_year.upn::text as ledger_upn,
        measured_this_year.forename::text as forename,
        measured_this_year.surname::text as surname,
        measured_this_year.date_of_birth::date as date_of_birth,
        measured_this_year.sex_code::text as sex,
        pupils_on_roll.address_line_1::text as address_line_1,
        pupils_on_roll.address_line_2::text as address_line_2,
        pupils_on_roll.town::text as town,
        pupils_on_roll.postcode::text as postcode,
        measured_this_year.school_urn::integer as school_urn,
        schools.school_name::text as school_name,
        measured_this_year.nc_year_code::text as nc_year,
        measured_this_year.measurement_date::date as measurement_date,
        round(measured_this_year.height_cm, 1)::numeric as height_cm,
        round(measured_this_year.weight_kg, 1)::numeric as weight_kg,
        round(measured_this_year.bmi::numeric, 1)::numeric as bmi,
        round(measured_this_year.bmi_sds::numeric, 2)::numeric as bmi_sds,
        round(
            case
                when measured_this_year.bmi_centile >= 50 then floor(measured_this_year.bmi_centile::numeric * 10)
                else ceil(measured_this_year.bmi_centile::numeric * 10)
            end / 10,
            1
        )::numeric as bmi_centile,
        measured_this_year.bmi_category_code::text as bmi_category
    from measured_this_year
    left join pupils_on_roll
        on measured_this_year.upn = pupils_on_roll.upn
    left join schools
        on measured_this_year.school_urn = schools.school_urn
)

select * from final
