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
    cross join lateral {{ jsonb_items("source.sen_history -> 'provisions'") }}
),

final as (
    select
        _load_batch_id as load_batch_id,
        _row_number as pupil_ordinal,
        item_ordinal as sen_provision_ordinal,
        upper({{ blank_as_null('upn') }}) as upn,
        {{ iso_date("item ->> 'StartDate'") }} as sen_provision_start_date,
        upper({{ blank_as_null("item ->> 'SENprovision'") }}) as sen_provision_code
    from flattened
)

select * from final
