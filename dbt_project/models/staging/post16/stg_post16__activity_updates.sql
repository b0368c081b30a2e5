with

source as (
    select * from {{ source('post16', 'activity_updates') }}
    where not _rejected
),

final as (
    select
        _load_batch_id || '-' || _row_number as activity_update_id,
        _load_batch_id as load_batch_id,
        _row_number as source_row_number,
        upper({{ blank_as_null('upn') }}) as upn,
        {{ blank_as_null('uln') }} as unique_learner_number,
        {{ blank_as_null('activity_code') }} as nccis_activity_code,
        {{ iso_date('activity_date') }} as activity_date,
        lower({{ blank_as_null('source') }}) as update_source_code
    from source
)

select * from final
