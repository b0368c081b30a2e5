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
    cross join lateral {{ jsonb_items("source.sen_history -> 'needs'") }}
),

final as (
    select
        _load_batch_id as load_batch_id,
        _row_number as pupil_ordinal,
        item_ordinal as sen_need_ordinal,
        upper({{ blank_as_null('upn') }}) as upn,
        {{ census_integer("item ->> 'SENtypeRank'") }} as sen_type_rank,
        upper({{ blank_as_null("item ->> 'SENtype'") }}) as sen_type_code
    from flattened
)

select * from final
