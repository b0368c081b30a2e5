with

source as (
    select * from {{ source('pipeline', 'load_batches') }}
),

final as (
    select
        load_batch_id as load_batch_id,
        return_type as return_type,
        source_name as source_name,
        content_sha256 as content_sha256,
        status as batch_status_code,
        census_term as census_term_code,
        census_year as census_year,
        reference_date as census_reference_date,
        loaded_at as loaded_at
    from source
)

select * from final
