{#
    Reception pupils of primary, first and infant schools and the children's centre their home postcode routes them
    to (recipients.yml `sure_start`). Grain: one row per pupil on roll in an NC year of var `sure_start_nc_years`
    (Reception) at a school whose phase is in var `sure_start_school_phases` (PS) and whose lowest NC year group is
    in var `sure_start_school_lowest_nc_years` (nursery or Reception: a junior school, starting at Year 3, is not
    one). `children_centre_id` is null when no reach area covers the postcode (or the postcode is missing or not a
    UK postcode); the mart leaves those pupils out.

    Routing (seed sure_start_reach_areas): the postcode, upper-cased without spaces, splits into its outward code
    (all but the last three characters) and inward code; its sector is the outward code, a space and the inward
    code's digit. A reach area naming the sector wins over one naming the district (outward code).
#}
with

pupils_on_roll as (
    select * from {{ ref('int_pupils_on_roll_latest') }}
),

schools as (
    select * from {{ ref('stg_census__schools') }}
),

reach_areas as (
    select * from {{ ref('sure_start_reach_areas') }}
),

reception_pupils as (
    select
        pupils_on_roll.*,
        schools.school_phase_code as school_phase_code,
        schools.lowest_nc_year_code as school_lowest_nc_year_code
    from pupils_on_roll
    inner join schools
        on pupils_on_roll.load_batch_id = schools.load_batch_id
        and pupils_on_roll.school_census_table_id = schools.school_census_table_id
    where
        pupils_on_roll.nc_year_code in ({{ sql_text_list(var('sure_start_nc_years')) }})
        and schools.school_phase_code in ({{ sql_text_list(var('sure_start_school_phases')) }})
        and schools.lowest_nc_year_code in ({{ sql_text_list(var('sure_start_school_lowest_nc_years')) }})
),

postcodes_compacted as (
    select
        reception_pupils.*,
        upper(regexp_replace(coalesce(reception_pupils.postcode, ''), '\s+', '', 'g')) as compact_postcode
    from reception_pupils
),

postcodes_checked as (
    select
        postcodes_compacted.*,
        compact_postcode ~ '^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$' as is_uk_postcode
    from postcodes_compacted
),

postcodes_split as (
    select
        postcodes_checked.*,
        case
            when is_uk_postcode then left(compact_postcode, length(compact_postcode) - 3)
        end as postcode_district_code,
        case
            when is_uk_postcode
                then left(compact_postcode, length(compact_postcode) - 3) || ' ' || left(right(compact_postcode, 3), 1)
        end as postcode_sector_code
    from postcodes_checked
),

final as (
    select
        postcodes_split.upn as upn,
        postcodes_split.forename as forename,
        postcodes_split.surname as surname,
        postcodes_split.school_urn as school_urn,
        postcodes_split.school_name as school_name,
        postcodes_split.postcode_district_code as postcode_district_code,
        postcodes_split.postcode_sector_code as postcode_sector_code,
        coalesce(sector_areas.children_centre_id, district_areas.children_centre_id) as children_centre_id,
        case
            when sector_areas.children_centre_id is not null then 'sector'
            when district_areas.children_centre_id is not null then 'district'
        end as reach_area_level
    from postcodes_split
    left join reach_areas as sector_areas
        on postcodes_split.postcode_sector_code = sector_areas.reach_area_code
        and sector_areas.reach_area_level = 'sector'
    left join reach_areas as district_areas
        on postcodes_split.postcode_district_code = district_areas.reach_area_code
        and district_areas.reach_area_level = 'district'
)

select * from final
