{#
    The NCCIS feed (recipients.yml `nccis`): young people on roll of academic age 16 or 17 (vars nccis_academic_ages)
    and Year 11 pupils (var nccis_nc_years, the September Guarantee), each with their current NCCIS activity: the
    latest of int_nccis_activities_unioned dated on or before the feed date (same day: activity update, then
    enrolment, then school roll; then the later batch and row); none: 810 (not known).

    Restricted young people (int_yss_restrictions_resolved: NCCIS data is collected through Youth Support Services)
    carry name, date of birth and postcode, and only the activity YSS collected itself (updates whose source is yss;
    none: 810 with no date); every field that came from school data is null.
#}

with

pupils_on_roll as (
    select * from {{ ref('int_pupils_on_roll_latest') }}
),

restrictions as (
    select * from {{ ref('int_yss_restrictions_resolved') }}
),

activities as (
    select * from {{ ref('int_nccis_activities_unioned') }}
),

applications as (
    select * from {{ ref('int_post16_applications_resolved') }}
),

cohort as (
    -- a pupil with no readable date of birth has no academic age: in the cohort only as a Year 11 pupil
    select
        pupils_on_roll.*,
        coalesce(pupils_on_roll.nc_year_code in ({{ sql_text_list(var('nccis_nc_years')) }}), false)
            as is_september_guarantee_year
    from pupils_on_roll
    where
        {{ academic_age('pupils_on_roll.date_of_birth', feed_date()) }}
            in ({{ var('nccis_academic_ages') | join(', ') }})
        or pupils_on_roll.nc_year_code in ({{ sql_text_list(var('nccis_nc_years')) }})
),

known_activities as (
    select * from activities
    where activity_date <= {{ feed_date() }}
),

latest_activity as (
    select distinct on (upn) upn, activity_code, activity_date
    from known_activities
    order by upn, activity_date desc, same_day_rank desc, load_batch_id desc, source_row_number desc
),

latest_yss_activity as (
    select distinct on (upn) upn, activity_code, activity_date
    from known_activities
    where is_yss_collected
    order by upn, activity_date desc, same_day_rank desc, load_batch_id desc, source_row_number desc
),

offers as (
    select
        upn,
        bool_or(latest_status_code in ({{ sql_text_list(var('nccis_offer_statuses')) }})) as has_offer
    from applications
    group by upn
),

cohort_joined as (
    select
        cohort.*,
        -- a pupil the restriction model does not know is treated as restricted (fail closed)
        coalesce(restrictions.is_yss_restricted, true) as is_yss_restricted,
        latest_activity.activity_code as any_activity_code,
        latest_activity.activity_date as any_activity_date,
        latest_yss_activity.activity_code as yss_activity_code,
        latest_yss_activity.activity_date as yss_activity_date,
        case when cohort.is_september_guarantee_year then coalesce(offers.has_offer, false) end as has_offer
    from cohort
    left join restrictions
        on cohort.upn = restrictions.upn
    left join latest_activity
        on cohort.upn = latest_activity.upn
    left join latest_yss_activity
        on cohort.upn = latest_yss_activity.upn
    left join offers
        on cohort.upn = offers.upn
),

final as (
    select
        upn::text as ledger_upn,
        forename::text as forename,
        surname::text as surname,
        date_of_birth::date as date_of_birth,
        postcode::text as postcode,
        -- from school data: only for young people who are not restricted
        {{ blank_when_restricted([
            {'name': 'upn', 'data_type': 'text'},
            {'name': 'sex', 'data_type': 'text', 'expression': 'sex_code'},
            {'name': 'sen_provision_code', 'data_type': 'text'},
            {'name': 'nc_year', 'data_type': 'text', 'expression': 'nc_year_code'},
            {'name': 'has_september_guarantee_offer', 'data_type': 'boolean', 'expression': 'has_offer'},
        ]) }},
        -- collected by YSS itself for a restricted young person; every source otherwise; none: 810 not known
        coalesce(
            case when is_yss_restricted then yss_activity_code else any_activity_code end,
            '810'
        )::text as activity_code,
        (case when is_yss_restricted then yss_activity_date else any_activity_date end)::date as activity_date
    from cohort_joined
)

select * from final
