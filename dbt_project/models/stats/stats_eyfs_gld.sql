{#-
    Pupils with an EYFS profile and pupils reaching a good level of development, per school and academic year.
    Rules: docs block `stats_eyfs_gld`.
-#}

with

eyfs_results as (
    select * from {{ ref('int_eyfs_results_gld') }}
),

schools as (
    select * from {{ ref('int_census_schools_current') }}
),

latest_results as (
    -- a pupil sent in more than one batch for the same year counts once, as the latest batch has it
    select distinct on (academic_year, upn)
        *
    from eyfs_results
    where upn is not null and academic_year ~ '^[0-9]{4}/[0-9]{2}$' and school_urn is not null
    order by academic_year, upn, load_batch_id desc, source_row_number
),

school_results as (
    select
        substr(academic_year, 1, 4) || substr(academic_year, 6, 2) as time_period,
        school_urn as school_urn,
        count(*) as pupils_assessed,
        count(*) filter (where has_good_level_of_development) as pupils_reaching_gld
    from latest_results
    group by academic_year, school_urn
),

final as (
    select
        school_results.time_period::text as time_period,
        'Academic year'::text as time_identifier,
        school_results.school_urn::integer as school_urn,
        schools.school_laestab::text as school_laestab,
        schools.school_name::text as school_name,
        schools.school_phase::text as school_phase,
        school_results.pupils_assessed::integer as pupils_assessed,
        school_results.pupils_reaching_gld::integer as pupils_reaching_gld
    from school_results
    inner join schools
        on school_results.school_urn = schools.school_urn
)

select * from final
