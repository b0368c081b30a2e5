with

flattened as (
    {{ ctf_pupil_items('fsm_history') }}
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
