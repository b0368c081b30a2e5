with

source as (
    select * from {{ source('ctf', 'ctf_files') }}
),

renamed as (
    select
        _load_batch_id as load_batch_id,
        {{ blank_as_null('file_name') }} as file_name,
        {{ blank_as_null('ctf_version') }} as ctf_version,
        -- DateTime is YYYY-MM-DDThh:mm:ss, school local time: kept as a local timestamp, not an _at (UTC) column
        case
            when trim(date_time) ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$'
                and {{ iso_date('left(trim(date_time), 10)') }} is not null
                then to_timestamp(trim(date_time), 'YYYY-MM-DD"T"HH24:MI:SS')::timestamp
        end as ctf_created_local_time,
        {{ iso_date('left(trim(date_time), 10)') }} as ctf_date,
        {{ blank_as_null('document_qualifier') }} as document_qualifier,
        upper({{ blank_as_null('source_lea') }}) as source_la_code,
        upper({{ blank_as_null('source_estab') }}) as source_estab,
        {{ blank_as_null('source_school_name') }} as source_school_name,
        upper({{ blank_as_null('dest_lea') }}) as destination_la_code,
        upper({{ blank_as_null('dest_estab') }}) as destination_estab,
        case when trim(pupil_count) ~ '^[0-9]{1,9}$' then trim(pupil_count)::integer end as pupil_count
    from source
),

final as (
    select
        load_batch_id,
        file_name,
        ctf_version,
        ctf_created_local_time,
        ctf_date,
        document_qualifier,
        source_la_code,
        source_estab,
        source_la_code || source_estab as source_laestab,
        source_school_name,
        destination_la_code,
        destination_estab,
        -- XXX/XXXX: destination not known; MMM/MMMM: abroad, independent or outside England and Wales
        case
            when destination_la_code ~ '^[0-9]{3}$' and destination_estab ~ '^[0-9]{4}$'
                then destination_la_code || destination_estab
        end as destination_laestab,
        destination_la_code = 'XXX' or destination_estab = 'XXXX' as is_destination_unknown,
        destination_la_code = 'MMM' or destination_estab = 'MMMM' as is_destination_outside_maintained,
        pupil_count
    from renamed
)

select * from final
