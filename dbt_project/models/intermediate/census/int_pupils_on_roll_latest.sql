with

current_registrations as (
    select * from {{ ref('int_census_registrations_current') }}
),

school_returns as (
    select * from {{ ref('stg_census__school_returns') }}
),

schools as (
    select * from {{ ref('stg_census__schools') }}
),

addresses as (
    select * from {{ ref('stg_census__addresses') }}
),

main_registrations as (
    -- one row per UPN: a C or M registration over any other status, then the earliest row in the file.
    -- distinct on (not a row_number() = 1 filter) keeps the planner's row estimates right, so the joins below
    -- stay hash joins at county scale
    select distinct on (upn)
        current_registrations.*,
        count(*) over (partition by upn) as registration_count
    from current_registrations
    order by
        upn,
        case when enrol_status_code in ('C', 'M') then 1 else 2 end,
        census_reference_date desc nulls last,
        load_batch_id desc,
        source_row_number
),

first_addresses_picked as (
    -- a pupil may have several addresses: the first in the file
    select distinct on (addresses.load_batch_id, addresses.pupil_on_roll_table_id)
        addresses.*
    from addresses
    inner join main_registrations
        on addresses.load_batch_id = main_registrations.load_batch_id
        and addresses.pupil_on_roll_table_id = main_registrations.pupil_on_roll_table_id
    order by addresses.load_batch_id, addresses.pupil_on_roll_table_id, addresses.source_row_number
),

first_addresses as (
    select
        load_batch_id as load_batch_id,
        pupil_on_roll_table_id as pupil_on_roll_table_id,
        uprn as uprn,
        nullif(
            concat_ws(
                ', ',
                saon,
                nullif(
                    case
                        when paon ~ '^[0-9]' then concat_ws(' ', paon, street)
                        else concat_ws(', ', paon, street)
                    end,
                    ''
                )
            ),
            ''
        ) as address_line_1,
        locality as address_line_2,
        coalesce(post_town, town) as town,
        postcode as postcode
    from first_addresses_picked
),

final as (
    select
        main_registrations.upn as upn,
        main_registrations.load_batch_id as load_batch_id,
        coalesce(
            main_registrations.census_reference_date,
            school_returns.census_reference_date
        ) as census_reference_date,
        main_registrations.pupil_on_roll_table_id as pupil_on_roll_table_id,
        main_registrations.school_census_table_id as school_census_table_id,
        main_registrations.source_row_number as source_row_number,
        main_registrations.enrol_status_code as enrol_status_code,
        main_registrations.registration_count as registration_count,
        main_registrations.forename as forename,
        main_registrations.middle_names as middle_names,
        main_registrations.surname as surname,
        main_registrations.date_of_birth as date_of_birth,
        main_registrations.sex_code as sex_code,
        main_registrations.nc_year_code as nc_year_code,
        main_registrations.sen_provision_code as sen_provision_code,
        main_registrations.language_code as language_code,
        main_registrations.yssa_code as yssa_code,
        school_returns.school_urn as school_urn,
        school_returns.school_laestab as school_laestab,
        schools.school_name as school_name,
        first_addresses.address_line_1 as address_line_1,
        first_addresses.address_line_2 as address_line_2,
        first_addresses.town as town,
        first_addresses.postcode as postcode,
        first_addresses.uprn as uprn
    from main_registrations
    left join school_returns
        on main_registrations.load_batch_id = school_returns.load_batch_id
        and main_registrations.school_census_table_id = school_returns.school_census_table_id
    left join schools
        on main_registrations.load_batch_id = schools.load_batch_id
        and main_registrations.school_census_table_id = schools.school_census_table_id
    left join first_addresses
        on main_registrations.load_batch_id = first_addresses.load_batch_id
        and main_registrations.pupil_on_roll_table_id = first_addresses.pupil_on_roll_table_id
)

select * from final
