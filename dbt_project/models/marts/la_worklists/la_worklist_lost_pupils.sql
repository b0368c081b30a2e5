{#
    Lost pupils (SHARING_RULES.md, "LA's own uses"; docs/returns.md, "Common Transfer Files"): every pupil of a
    Common Transfer File whose destination is `XXX`/`XXXX` (not known) or `MMM`/`MMMM` (abroad, independent or outside
    England and Wales). Such files go to the lost-pupil list whatever school sent them.
#}
with

ctf_files as (
    select * from {{ ref('stg_ctf__files') }}
),

ctf_pupils as (
    select * from {{ ref('stg_ctf__pupils') }}
),

lost_files as (
    select * from ctf_files
    where is_destination_unknown or is_destination_outside_maintained
),

final as (
    select
        ctf_pupils.load_batch_id::bigint as load_batch_id,
        ctf_pupils.pupil_ordinal::bigint as pupil_ordinal,
        ctf_pupils.upn::text as upn,
        case
            when lost_files.is_destination_unknown then 'destination_unknown'
            else 'outside_maintained'
        end::text as lost_reason,
        ctf_pupils.forename::text as forename,
        ctf_pupils.surname::text as surname,
        ctf_pupils.date_of_birth::date as date_of_birth,
        ctf_pupils.nc_year_code::text as nc_year_code,
        ctf_pupils.postcode::text as postcode,
        lost_files.source_laestab::text as source_school_laestab,
        lost_files.source_school_name::text as source_school_name,
        lost_files.destination_la_code::text as destination_la_code,
        lost_files.destination_estab::text as destination_estab,
        lost_files.ctf_date::date as ctf_date,
        lost_files.file_name::text as ctf_file_name
    from ctf_pupils
    inner join lost_files
        on ctf_pupils.load_batch_id = lost_files.load_batch_id
)

select * from final
