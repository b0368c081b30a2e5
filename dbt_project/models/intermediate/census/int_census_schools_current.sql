{#-
    Each school as its most recent current census return describes it: the attributes the published statistics
    show beside a school (URN, LAESTAB, name, phase). Returns that send no URN are left out.
-#}

with

current_returns as (
    select * from {{ ref('stg_census__current_returns') }}
),

school_returns as (
    select * from {{ ref('stg_census__school_returns') }}
),

schools as (
    select * from {{ ref('stg_census__schools') }}
),

returns_described as (
    select
        school_returns.school_urn as school_urn,
        current_returns.school_laestab as school_laestab,
        schools.school_name as school_name,
        schools.school_phase_code as school_phase_code,
        current_returns.census_reference_date as census_reference_date,
        current_returns.load_batch_id as load_batch_id
    from current_returns
    inner join school_returns
        on current_returns.load_batch_id = school_returns.load_batch_id
        and current_returns.school_census_table_id = school_returns.school_census_table_id
    left join schools
        on current_returns.load_batch_id = schools.load_batch_id
        and current_returns.school_census_table_id = schools.school_census_table_id
    where school_returns.school_urn is not null
),

latest_per_school as (
    select distinct on (school_urn)
        *
    from returns_described
    order by school_urn, census_reference_date desc nulls last, load_batch_id desc
),

final as (
    select
        school_urn as school_urn,
        school_laestab as school_laestab,
        coalesce(school_name, 'School ' || school_urn::text) as school_name,
        school_phase_code as school_phase_code,
        {{ school_phase_label('school_phase_code') }} as school_phase,
        census_reference_date as census_reference_date
    from latest_per_school
)

select * from final
