with

flattened as (
    {{ ctf_pupil_items('school_history') }}
),

final as (
    select
        _load_batch_id as load_batch_id,
        _row_number as pupil_ordinal,
        item_ordinal as school_history_ordinal,
        upper({{ blank_as_null('upn') }}) as upn,
        {{ blank_as_null("item ->> 'LEA'") }} as school_la_code,
        {{ blank_as_null("item ->> 'Estab'") }} as school_estab,
        {{ blank_as_null("item ->> 'LEA'") }} || {{ blank_as_null("item ->> 'Estab'") }} as school_laestab,
        {{ blank_as_null("item ->> 'SchoolName'") }} as school_name,
        {{ iso_date("item ->> 'EntryDate'") }} as entry_date,
        {{ iso_date("item ->> 'LeavingDate'") }} as leaving_date
    from flattened
)

select * from final
