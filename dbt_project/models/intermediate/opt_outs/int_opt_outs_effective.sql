{#
    The effective opt-out state of every pupil on roll for every opt-out scope, and what caused it.
    Rules (SHARING_RULES.md "Who may opt out, and for what"; docs/policy.md):
    - valid requests only (int_opt_out_requests_validated); scope `all` counts for every scope;
    - the census item yssa = No is an opt-out of scope yss dated at the census reference date, made by the parent
      before the 16th birthday and by the pupil from it;
    - the latest valid request per pupil and scope wins: latest date, then on the same date an explicit request
      over the census item, then the later load batch, then the later row of the file;
    - an opt-out is in force when that latest request is an opt-out, except that with the setting `lapse` a
      parent's opt-out stops at the 16th birthday (default `persist`: it stays until the pupil decides).
#}
-- subject access (pupilshare sar) reads one pupil's rows: an index keeps that under a second at county scale
{{ config(indexes=[{'columns': ['upn']}]) }}

with

pupils_on_roll as (
    select * from {{ ref('int_pupils_on_roll_latest') }}
),

validated_requests as (
    select * from {{ ref('int_opt_out_requests_validated') }}
),

pupil_registrations as (
    select * from {{ ref('int_census_registrations_current') }}
),

scopes as (
    select scope_code
    from (values ('yss'), ('post16'), ('sure_start')) as scope_list (scope_code)
),

request_events as (
    select
        validated_requests.upn as upn,
        scopes.scope_code as scope_code,
        validated_requests.action_code as action_code,
        validated_requests.requested_by_code as requested_by_code,
        validated_requests.requested_on as requested_on,
        'opt_out_request' as cause_source,
        validated_requests.opt_out_request_id as cause_id,
        1 as same_day_rank,
        validated_requests.load_batch_id as load_batch_id,
        validated_requests.source_row_number as source_row_number
    from validated_requests
    inner join scopes
        on validated_requests.scope_code in (scopes.scope_code, 'all')
    where validated_requests.is_valid
),

census_yssa_events as (
    -- any current registration recording yssa = No counts (fail closed for dual registration), dated at the
    -- reference date of the census that recorded it
    select distinct on (pupils_on_roll.upn)
        pupils_on_roll.upn as upn,
        'yss' as scope_code,
        'opt_out' as action_code,
        case
            when {{ age_in_years('pupils_on_roll.date_of_birth', 'pupil_registrations.census_reference_date') }} >= 16
                then 'pupil'
            else 'parent'
        end as requested_by_code,
        pupil_registrations.census_reference_date as requested_on,
        'census_yssa' as cause_source,
        'census batch ' || pupil_registrations.load_batch_id || ' pupilonroll row '
            || pupil_registrations.source_row_number as cause_id,
        0 as same_day_rank,
        pupil_registrations.load_batch_id as load_batch_id,
        pupil_registrations.source_row_number as source_row_number
    from pupils_on_roll
    inner join pupil_registrations
        on pupils_on_roll.upn = pupil_registrations.upn
    where pupil_registrations.yssa_code = 'No'
    order by
        pupils_on_roll.upn,
        pupil_registrations.census_reference_date desc,
        pupil_registrations.load_batch_id desc,
        pupil_registrations.source_row_number
),

all_events as (
    select * from request_events
    union all
    select * from census_yssa_events
),

latest_events as (
    select distinct on (upn, scope_code) *
    from all_events
    where requested_on is not null
    order by upn, scope_code, requested_on desc, same_day_rank desc, load_batch_id desc, source_row_number desc
),

final as (
    select
        pupils_on_roll.upn as upn,
        scopes.scope_code as scope_code,
        coalesce(
            latest_events.action_code = 'opt_out'
            and not (
                '{{ var("opt_out_persistence") }}' = 'lapse'
                and latest_events.requested_by_code = 'parent'
                and {{ age_in_years('pupils_on_roll.date_of_birth', feed_date()) }} >= 16
            ),
            false
        ) as is_opted_out,
        latest_events.cause_source as cause_source,
        latest_events.cause_id as cause_id,
        latest_events.action_code as cause_action_code,
        latest_events.requested_by_code as cause_requested_by_code,
        latest_events.requested_on as cause_requested_on
    from pupils_on_roll
    cross join scopes
    left join latest_events
        on pupils_on_roll.upn = latest_events.upn
        and scopes.scope_code = latest_events.scope_code
)

select
    *,
    case
        when cause_source is null then 'no request'
        else
            case when is_opted_out then 'opted out' else 'not opted out' end
            || ': latest is ' || cause_action_code || ' by ' || cause_requested_by_code || ' on '
            || cause_requested_on || ' (' || replace(cause_source, '_', ' ') || ' ' || cause_id || ')'
            || case
                when cause_action_code = 'opt_out' and not is_opted_out
                    then ', lapsed at the 16th birthday (setting lapse)'
                else ''
            end
    end as explanation
from final
