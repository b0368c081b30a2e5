{#
    Every dated NCCIS activity known for a pupil on roll, from the three sources (recipients.yml `nccis`; decisions
    in docs/policy.md "NCCIS"):
    - school roll: the current census registration, by NC year group (seed nccis_school_roll_activity_codes: Year 11
      110, Years 12 and 13 210), dated at the census reference date;
    - post-16 enrolment: the latest status with a provider, on or before the feed date, is `enrolled`
      (int_post16_applications_resolved), coded by the provider's UKPRN (seed nccis_enrolment_activity_codes, else
      its default row), dated at the status date;
    - activity update: each update with a UPN and a date (stg_post16__activity_updates), as sent. An update with
      only a ULN cannot be tied to a pupil the census knows and is left out.
    The mart picks the latest on or before the feed date; on the same day an activity update wins over an enrolment,
    and an enrolment over the school roll (`same_day_rank`: the more specific, more recent report of what the young
    person does), then the later load batch and row. `is_yss_collected` marks updates whose source is YSS: the only
    activity a restricted young person's row may carry.
#}

with

pupils_on_roll as (
    select * from {{ ref('int_pupils_on_roll_latest') }}
),

applications as (
    select * from {{ ref('int_post16_applications_resolved') }}
),

activity_updates as (
    select * from {{ ref('stg_post16__activity_updates') }}
),

school_roll_codes as (
    select * from {{ ref('nccis_school_roll_activity_codes') }}
),

enrolment_codes as (
    select * from {{ ref('nccis_enrolment_activity_codes') }}
),

activity_codes as (
    select * from {{ ref('nccis_activity_codes') }}
),

school_roll_events as (
    select
        pupils_on_roll.upn as upn,
        'school_roll' as activity_source_code,
        'school' as update_source_code,
        school_roll_codes.activity_code as activity_code,
        pupils_on_roll.census_reference_date as activity_date,
        0 as same_day_rank,
        pupils_on_roll.load_batch_id as load_batch_id,
        pupils_on_roll.source_row_number as source_row_number,
        'census batch ' || pupils_on_roll.load_batch_id || ' pupilonroll row '
            || pupils_on_roll.source_row_number as activity_source_id
    from pupils_on_roll
    inner join school_roll_codes
        on pupils_on_roll.nc_year_code = school_roll_codes.nc_year_code
),

enrolment_events as (
    select
        applications.upn as upn,
        'post16_enrolment' as activity_source_code,
        'provider' as update_source_code,
        coalesce(listed_codes.activity_code, default_code.activity_code) as activity_code,
        applications.latest_status_date as activity_date,
        1 as same_day_rank,
        split_part(applications.latest_application_id, '-', 1)::bigint as load_batch_id,
        split_part(applications.latest_application_id, '-', 2)::bigint as source_row_number,
        'post-16 application ' || applications.latest_application_id as activity_source_id
    from applications
    left join enrolment_codes as listed_codes
        on applications.provider_ukprn = listed_codes.provider_ukprn
    cross join (
        select activity_code from enrolment_codes where provider_ukprn is null
    ) as default_code
    where applications.latest_status_code = 'enrolled'
),

update_events as (
    select
        upn as upn,
        'activity_update' as activity_source_code,
        update_source_code as update_source_code,
        nccis_activity_code as activity_code,
        activity_date as activity_date,
        2 as same_day_rank,
        load_batch_id as load_batch_id,
        source_row_number as source_row_number,
        'activity update ' || activity_update_id as activity_source_id
    from activity_updates
    where upn is not null and activity_date is not null
),

all_events as (
    select * from school_roll_events
    union all
    select * from enrolment_events
    union all
    select * from update_events
),

final as (
    select
        all_events.*,
        all_events.update_source_code = 'yss' as is_yss_collected,
        -- null for a code the list does not hold: the relationships test on activity_code then fails the build
        activity_codes.activity_group as activity_group
    from all_events
    inner join pupils_on_roll
        on all_events.upn = pupils_on_roll.upn
    left join activity_codes
        on all_events.activity_code = activity_codes.activity_code
)

select * from final
