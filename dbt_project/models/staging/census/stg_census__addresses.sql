with

autumn_addresses as (
    -- the Autumn census names the table addressesonroll; Spring and Summer name it addresses (same items)
    {{ census_rows_kept('census_addressesonroll', 'addressesonroll') }}
),

spring_summer_addresses as (
    {{ census_rows_kept('census_addresses', 'addresses') }}
),

unioned as (
    select
        'addressesonroll' as census_table_name,
        addressesonrolltableid as address_table_id,
        pupilonrolltableid, uniquepropertyreferencenumber, saon, paon, street, locality, town, posttown, postcode,
        _load_batch_id, _row_number
    from autumn_addresses
    union all
    select
        'addresses' as census_table_name,
        addressestableid as address_table_id,
        pupilonrolltableid, uniquepropertyreferencenumber, saon, paon, street, locality, town, posttown, postcode,
        _load_batch_id, _row_number
    from spring_summer_addresses
),

final as (
    select
        {{ blank_as_null('address_table_id') }} as address_on_roll_table_id,
        {{ blank_as_null('pupilonrolltableid') }} as pupil_on_roll_table_id,
        _load_batch_id as load_batch_id,
        _row_number as source_row_number,
        census_table_name as census_table_name,
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
    from unioned
)

select * from final
