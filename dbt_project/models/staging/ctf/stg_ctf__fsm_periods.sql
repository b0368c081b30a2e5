with

source as (
    select * from {{ source('ctf', 'ctf_pupils') }}
    where not _rejected
),

flattened as (
    select
        source._load_batch_id,
        source._row_number,
        source.upn,
        items.item,
        items.item_ordinal
    from source
    cross join lateral {{ jsonb_items('source.fsm_history') }}
),

final as (
    select
        _load_batch_id as load_batch_id,
        _row_number as pupil_ordinal,
        item_ordinal as fsm_period_ordinal,
        upper({{ blank_as_null('upn') }}) as upn,
        {{ iso_date("item ->> 'FSMstartDate'") }} as fsm_start_date,
        {{ iso_date("item ->> 'FSMendDate'") }} as fsm_end_date,
        upper({{ blank_as_null("item ->> 'UKcountry'") }}) as uk_country_code
    from flattened
)

select * from final
