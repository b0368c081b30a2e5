with

source as (
    {{ census_rows_kept('census_addressesonroll', 'addressesonroll') }}
),

final as (
    select
        {{ blank_as_null('addressesonrolltableid') }} as address_on_roll_table_id,
        {{ blank_as_null('pupilonrolltableid') }} as pupil_on_roll_table_id,
        _load_batch_id as load_batch_id,
        _row_number as source_row_number,
        case
            when trim(uniquepropertyreferencenumber) ~ '^[0-9]{1,12}$'
                then trim(uniquepropertyreferencenumber)::bigint
        end as uprn,
        {{ blank_as_null('saon') }} as saon,
        {{ blank_as_null('paon') }} as paon,
        {{ blank_as_null('street') }} as street,
        {{ blank_as_null('locality') }} as locality,
        {{ blank_as_null('town') }} as town,
        {{ blank_as_null('posttown') }} as post_town,
        regexp_replace(upper({{ blank_as_null('postcode') }}), '\s+', ' ', 'g') as postcode
    from source
)

select * from final
