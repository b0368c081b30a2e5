{#
    The post-16 providers' feed (recipients.yml `post16`): one set per provider. Year 11 pupils on roll in the
    current census (var `post16_nc_years`), one row for each provider they applied to or hold an offer from on the
    feed date (int_post16_applications_resolved). A pupil opted out of post16 (scope post16 or all) on or before
    the feed date is excluded from every provider's set; a pupil the opt-out model does not know is excluded too
    (fail closed).
#}
with

pupils_on_roll as (
    select * from {{ ref('int_pupils_on_roll_latest') }}
),

applications as (
    select * from {{ ref('int_post16_applications_resolved') }}
),

opt_outs as (
    select * from {{ ref('int_opt_outs_effective') }}
),

pupil_details as (
    select * from {{ ref('int_post16_pupil_details_joined') }}
),

year_11_pupils as (
    select * from pupils_on_roll
    where nc_year_code in ({{ sql_text_list(var('post16_nc_years')) }})
),

not_opted_out as (
    select year_11_pupils.*
    from year_11_pupils
    inner join opt_outs
        on year_11_pupils.upn = opt_outs.upn
        and opt_outs.scope_code = 'post16'
    where not opt_outs.is_opted_out
),

routed as (
    select
        not_opted_out.*,
        applications.provider_ukprn as provider_ukprn
    from not_opted_out
    inner join applications
        on not_opted_out.upn = applications.upn
    where applications.is_in_provider_set
),

final as (
    select
        routed.upn::text as ledger_upn,
        routed.provider_ukprn::integer as provider_ukprn,
        routed.forename::text as forename,
        routed.surname::text as surname,
        routed.date_of_birth::date as date_of_birth,
        routed.upn::text as upn,
        coalesce(pupil_details.is_fsm_eligible, false)::boolean as is_fsm_eligible,
        routed.sen_provision_code::text as sen_provision_code,
        pupil_details.sen_primary_need_code::text as sen_primary_need_code,
        routed.language_code::text as first_language_code,
        coalesce(pupil_details.suspension_count, 0)::integer as suspension_count,
        coalesce(pupil_details.permanent_exclusion_count, 0)::integer as permanent_exclusion_count
    from routed
    left join pupil_details
        on routed.upn = pupil_details.upn
)

select * from final
