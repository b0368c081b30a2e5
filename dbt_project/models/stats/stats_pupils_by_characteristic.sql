{#-
    Pupils on roll in the current census per school, broken down by characteristic. Recoding rules: docs block
    `stats_pupil_characteristics`; time period: docs block `academic_year_of_census`.
-#}

with

pupils_on_roll as (
    select * from {{ ref('int_pupils_on_roll_latest') }}
),

schools as (
    select * from {{ ref('stg_census__schools') }}
),

pupils_placed as (
    -- a pupil whose registration has no school (no return header) cannot be counted at a school, so is left out
    select
        pupils_on_roll.*,
        schools.school_phase_code as school_phase_code,
        extract(year from pupils_on_roll.census_reference_date)::int
        - case when extract(month from pupils_on_roll.census_reference_date) < 9 then 1 else 0 end
            as academic_year_start
    from pupils_on_roll
    left join schools
        on pupils_on_roll.load_batch_id = schools.load_batch_id
        and pupils_on_roll.school_census_table_id = schools.school_census_table_id
    where pupils_on_roll.school_urn is not null
),

pupils_recoded as (
    select
        upn as upn,
        academic_year_start::text || lpad(((academic_year_start + 1) % 100)::text, 2, '0') as time_period,
        'Academic year' as time_identifier,
        school_urn as school_urn,
        school_laestab as school_laestab,
        school_name as school_name,
        school_phase_code as school_phase_code,
        {{ school_phase_label('school_phase_code') }} as school_phase,
        case sex_code
            when 'M' then 'Male'
            when 'F' then 'Female'
            else 'Unclassified'
        end as sex,
        case
            when sen_provision_code in ('E', 'S') then 'EHC plan'
            when sen_provision_code in ('K', 'A', 'P') then 'SEN support'
            when sen_provision_code = 'N' then 'No SEN'
            else 'Unclassified'
        end as sen_provision,
        case
            when language_code in ('ENG', 'ENB') then 'Known or believed to be English'
            when language_code is null or language_code in ('NOT', 'REF') then 'Unclassified'
            else 'Known or believed to be other than English'
        end as first_language,
        case
            when nc_year_code ~ '^[0-9]{1,2}$' then 'Year ' || nc_year_code::int
            when nc_year_code = 'R' then 'Reception'
            when nc_year_code = 'N1' then 'Nursery 1'
            when nc_year_code = 'N2' then 'Nursery 2'
            when nc_year_code = 'E1' then 'Early years 1'
            when nc_year_code = 'E2' then 'Early years 2'
            when nc_year_code = 'X' then 'National curriculum not followed'
            when nc_year_code = 'M' then 'Mixed year groups'
            else 'Unclassified'
        end as nc_year
    from pupils_placed
),

pupil_characteristics as (
    -- one row per pupil per characteristic: each characteristic is a separate breakdown of the same pupils
    select
        pupils_recoded.time_period as time_period,
        pupils_recoded.school_urn as school_urn,
        characteristic_values.characteristic as characteristic,
        characteristic_values.characteristic_value as characteristic_value
    from pupils_recoded
    cross join lateral (
        values
        ('Sex', pupils_recoded.sex),
        ('SEN provision', pupils_recoded.sen_provision),
        ('First language', pupils_recoded.first_language),
        ('National curriculum year group', pupils_recoded.nc_year)
    ) as characteristic_values (characteristic, characteristic_value)
),

headcounts as (
    select
        time_period as time_period,
        school_urn as school_urn,
        characteristic as characteristic,
        characteristic_value as characteristic_value,
        count(*) as headcount
    from pupil_characteristics
    group by time_period, school_urn, characteristic, characteristic_value
),

schools_in_census as (
    select distinct
        time_period as time_period,
        time_identifier as time_identifier,
        school_urn as school_urn,
        school_laestab as school_laestab,
        school_name as school_name,
        school_phase_code as school_phase_code,
        school_phase as school_phase
    from pupils_recoded
),

published_values as (
    -- every value seen anywhere in the LA in the period is published for every school, 0 where it has none
    select distinct
        time_period as time_period,
        characteristic as characteristic,
        characteristic_value as characteristic_value
    from pupil_characteristics
),

school_value_grid as (
    select
        schools_in_census.*,
        published_values.characteristic as characteristic,
        published_values.characteristic_value as characteristic_value
    from schools_in_census
    inner join published_values
        on schools_in_census.time_period = published_values.time_period
),

final as (
    select
        school_value_grid.time_period::text as time_period,
        school_value_grid.time_identifier::text as time_identifier,
        school_value_grid.school_urn::integer as school_urn,
        school_value_grid.school_laestab::text as school_laestab,
        school_value_grid.school_name::text as school_name,
        school_value_grid.school_phase_code::text as school_phase_code,
        school_value_grid.school_phase::text as school_phase,
        school_value_grid.characteristic::text as characteristic,
        school_value_grid.characteristic_value::text as characteristic_value,
        coalesce(headcounts.headcount, 0)::integer as headcount
    from school_value_grid
    left join headcounts
        on school_value_grid.time_period = headcounts.time_period
        and school_value_grid.school_urn = headcounts.school_urn
        and school_value_grid.characteristic = headcounts.characteristic
        and school_value_grid.characteristic_value = headcounts.characteristic_value
)

select * from final
