{#
    Each pupil's standing with each post-16 provider on the feed date (recipients.yml `post16.cohort`):
    the latest status change dated on or before the feed date wins (latest status date, then the later load batch,
    then the later row of the file); a change dated after the feed date is not yet known. The pupil is in the
    provider's set when that latest status is one of var `post16_application_statuses` (applied, offered, accepted,
    enrolled): they applied to, or hold an offer from, the provider. declined or withdrawn: not in the set.
#}
with

applications as (
    select * from {{ ref('stg_post16__applications') }}
),

known_on_feed_date as (
    select * from applications
    where
        upn is not null
        and provider_ukprn is not null
        and status_date is not null
        and status_date <= {{ feed_date() }}
),

latest_status as (
    select distinct on (upn, provider_ukprn)
        upn,
        provider_ukprn,
        application_status_code,
        status_date,
        application_id
    from known_on_feed_date
    order by upn, provider_ukprn, status_date desc, load_batch_id desc, source_row_number desc
),

final as (
    select
        upn as upn,
        provider_ukprn as provider_ukprn,
        application_status_code as latest_status_code,
        status_date as latest_status_date,
        application_id as latest_application_id,
        coalesce(
            application_status_code in ({{ sql_text_list(var('post16_application_statuses')) }}),
            false
        ) as is_in_provider_set
    from latest_status
)

select * from final
