with

requests as (
    select * from {{ ref('stg_optouts__requests') }}
),

pupils_on_roll as (
    select * from {{ ref('int_pupils_on_roll_latest') }}
),

requests_with_age as (
    select
        requests.*,
        pupils_on_roll.date_of_birth as date_of_birth,
        {{ age_in_years('pupils_on_roll.date_of_birth', 'requests.requested_on') }} as age_on_request
    from requests
    left join pupils_on_roll
        on requests.upn = pupils_on_roll.upn
),

final as (
    select
        opt_out_request_id,
        load_batch_id,
        source_row_number,
        upn,
        scope_code,
        action_code,
        requested_by_code,
        requested_on,
        channel_code,
        age_on_request,
        case
            when is_rejected_at_load then 'rejected at load: see raw.validation_findings for this row'
            when date_of_birth is null then 'pupil not on roll in the current census'
            when requested_on is null then 'no valid request date'
            when requested_on > {{ feed_date() }} then 'dated after the feed date'
            when age_on_request < 0 then 'dated before the pupil was born'
            when age_on_request < 16 and requested_by_code <> 'parent'
                then 'the pupil was ' || age_on_request || ' on ' || requested_on
                    || ': until the 16th birthday only a parent may make or withdraw a request'
            when age_on_request >= 16 and requested_by_code <> 'pupil'
                then 'the pupil was ' || age_on_request || ' on ' || requested_on
                    || ': from the 16th birthday only the pupil may make or withdraw a request'
        end as rejection_reason
    from requests_with_age
)

select
    *,
    rejection_reason is null as is_valid
from final
