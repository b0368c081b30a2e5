with

source as (
    select * from {{ source('census', 'current_census_returns') }}
),

final as (
    select
        load_batch_id as load_batch_id,
        schoolcensus_table_id as school_census_table_id,
        laestab as school_laestab,
        census_term as census_term_code,
        census_year as census_year,
        reference_date as census_reference_date
    from source
)

select * from final
