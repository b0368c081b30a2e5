with

flattened as (
    {{ ctf_pupil_items("sen_history -> 'needs'") }}
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
