with

flattened as (
    {{ ctf_pupil_items("sen_history -> 'provisions'") }}
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
