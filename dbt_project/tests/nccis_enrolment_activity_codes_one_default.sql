{#
    The enrolment mapping seed must have exactly one default row (blank provider_ukprn): with none, every enrolment
    with an unlisted provider would silently give no activity; with two, one enrolment would give two.
    Fails with the number of default rows when it is not 1.
#}

with

enrolment_codes as (
    select * from {{ ref('nccis_enrolment_activity_codes') }}
),

final as (
    select count(*) as default_row_count
    from enrolment_codes
    where provider_ukprn is null
    having count(*) <> 1
)

select * from final
