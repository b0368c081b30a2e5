with

source as (
    select * from {{ source('optouts', 'optout_requests') }}
),

final as (
    select
        _load_batch_id || '-' || _row_number as opt_out_request_id,
        _load_batch_id as load_batch_id,
        _row_number as source_row_number,
        _rejected as is_rejected_at_load,
        upper({{ blank_as_null('upn') }}) as upn,
        lower({{ blank_as_null('scope') }}) as scope_code,
        lower({{ blank_as_null('action') }}) as action_code,
        lower({{ blank_as_null('requested_by') }}) as requested_by_code,
        case
            when requested_on ~ '^\d{4}-\d{2}-\d{2}$' then to_date(requested_on, 'YYYY-MM-DD')
        end as requested_on,
        lower({{ blank_as_null('channel') }}) as channel_code
    from source
)

select * from final
