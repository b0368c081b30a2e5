with

source as (
    select * from {{ source('post16', 'post16_applications') }}
    where not _rejected
),

final as (
    select
        _load_batch_id || '-' || _row_number as application_id,
        _load_batch_id as load_batch_id,
        _row_number as source_row_number,
        upper({{ blank_as_null('upn') }}) as upn,
        case when trim(ukprn) ~ '^[0-9]{8}$' then trim(ukprn)::integer end as provider_ukprn,
        lower({{ blank_as_null('status') }}) as application_status_code,
        {{ iso_date('status_date') }} as status_date
    from source
)

select * from final
