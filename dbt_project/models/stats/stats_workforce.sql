{#-
    School workforce per school and census year: staff headcount and FTE, working days lost to sickness and
    vacancies, from the latest School Workforce Census batch of each year. Rules: docs block `stats_workforce`.
-#}

with

load_batches as (
    select * from {{ ref('stg_pipeline__load_batches') }}
),

staff as (
    select * from {{ ref('stg_workforce__staff') }}
),

contracts as (
    select * from {{ ref('stg_workforce__contracts') }}
),

absences as (
    select * from {{ ref('stg_workforce__absences') }}
),

vacancies as (
    select * from {{ ref('stg_workforce__vacancies') }}
),

schools as (
    select * from {{ ref('int_census_schools_current') }}
),

schools_by_laestab as (
    -- a LAESTAB reused by a new URN (an academy conversion) belongs to the URN of its latest census return
    select distinct on (school_laestab)
        *
    from schools
    order by school_laestab, census_reference_date desc nulls last, school_urn desc
),

batches_dated as (
    -- SWC files carry no census date: the year comes from the set's name (swc_<LA>_<YYYY>, the academic year the
    -- November census falls in), else from when the batch was loaded
    select
        load_batch_id as load_batch_id,
        coalesce(
            substring(source_name from '([0-9]{4})$')::int,
            extract(year from loaded_at)::int - case when extract(month from loaded_at) < 9 then 1 else 0 end
        ) as academic_year_start
    from load_batches
    where load_batch_id in (select load_batch_id from staff)
),

latest_batches as (
    select distinct on (academic_year_start)
        load_batch_id as load_batch_id,
        academic_year_start::text || lpad(((academic_year_start + 1) % 100)::text, 2, '0') as time_period
    from batches_dated
    order by academic_year_start, load_batch_id desc
),

staff_counts as (
    select
        staff.load_batch_id as load_batch_id,
        staff.school_laestab as school_laestab,
        count(distinct staff.staff_id) as staff_headcount
    from staff
    group by staff.load_batch_id, staff.school_laestab
),

fte_sums as (
    select
        load_batch_id as load_batch_id,
        school_laestab as school_laestab,
        sum(coalesce(full_time_equivalent, 0)) as staff_fte
    from contracts
    group by load_batch_id, school_laestab
),

sickness_sums as (
    select
        load_batch_id as load_batch_id,
        school_laestab as school_laestab,
        sum(coalesce(working_days_lost, 0)) as sickness_days_lost
    from absences
    where absence_category_code = 'SIC'
    group by load_batch_id, school_laestab
),

vacancy_counts as (
    select
        load_batch_id as load_batch_id,
        school_laestab as school_laestab,
        count(*) as vacancies
    from vacancies
    group by load_batch_id, school_laestab
),

school_workforce as (
    select
        latest_batches.time_period as time_period,
        staff_counts.school_laestab as school_laestab,
        staff_counts.staff_headcount as staff_headcount,
        coalesce(fte_sums.staff_fte, 0) as staff_fte,
        coalesce(sickness_sums.sickness_days_lost, 0) as sickness_days_lost,
        coalesce(vacancy_counts.vacancies, 0) as vacancies
    from staff_counts
    inner join latest_batches
        on staff_counts.load_batch_id = latest_batches.load_batch_id
    left join fte_sums
        on staff_counts.load_batch_id = fte_sums.load_batch_id
        and staff_counts.school_laestab = fte_sums.school_laestab
    left join sickness_sums
        on staff_counts.load_batch_id = sickness_sums.load_batch_id
        and staff_counts.school_laestab = sickness_sums.school_laestab
    left join vacancy_counts
        on staff_counts.load_batch_id = vacancy_counts.load_batch_id
        and staff_counts.school_laestab = vacancy_counts.school_laestab
),

final as (
    select
        school_workforce.time_period::text as time_period,
        'Academic year'::text as time_identifier,
        schools_by_laestab.school_urn::integer as school_urn,
        schools_by_laestab.school_laestab::text as school_laestab,
        schools_by_laestab.school_name::text as school_name,
        schools_by_laestab.school_phase::text as school_phase,
        school_workforce.staff_headcount::integer as staff_headcount,
        school_workforce.vacancies::integer as vacancies,
        round(school_workforce.staff_fte, 2)::numeric(12, 2) as staff_fte,
        round(school_workforce.sickness_days_lost, 1)::numeric(12, 1) as sickness_days_lost
    from school_workforce
    inner join schools_by_laestab
        on school_workforce.school_laestab = schools_by_laestab.school_laestab
)

select * from final
