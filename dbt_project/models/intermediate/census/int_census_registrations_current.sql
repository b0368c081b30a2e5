with

pupils as (
    select * from {{ ref('stg_census__pupils') }}
),

current_returns as (
    select * from {{ ref('stg_census__current_returns') }}
),

latest_return_per_school as (
    -- a school's most recent census (latest reference date, then the later batch) is its current roll
    select distinct on (school_laestab)
        load_batch_id,
        school_census_table_id,
        census_reference_date
    from current_returns
    order by school_laestab, census_reference_date desc nulls last, load_batch_id desc
),

final as (
    select
        pupils.*,
        latest_return_per_school.census_reference_date as census_reference_date
    from pupils
    inner join latest_return_per_school
        on pupils.load_batch_id = latest_return_per_school.load_batch_id
        and pupils.school_census_table_id = latest_return_per_school.school_census_table_id
    -- a row without a UPN cannot be keyed to a pupil, so it cannot be shared or recorded
    where pupils.upn is not null
)

select * from final
