{#
    What the post-16 feed says about each pupil on roll beyond identity (recipients.yml `post16.further_fields`):
    FSM eligibility on the feed date, SEN primary need, and suspensions and permanent exclusions. Read from every
    current census return (Autumn, Spring, Summer), joined to the pupil by UPN through the registration the row
    hangs from. Decisions (docs/policy.md, post-16 providers):
    - FSM eligible: an FSM period covering the feed date (start on or before it, no end or an end on or after it);
    - primary need: the rank-1 SEN need type of the most recent census that recorded needs for the pupil (only the
      Spring census collects them), only while the current provision is E (EHC plan) or K (SEN support);
    - exclusions: distinct (start date, category) in the academic year of the feed date and the one before
      (Years 10 and 11 for a Year 11 pupil), dated on or before the feed date.
#}
with

pupils_on_roll as (
    select * from {{ ref('int_pupils_on_roll_latest') }}
),

registrations as (
    select * from {{ ref('stg_census__pupils') }}
),

fsm_periods as (
    select * from {{ ref('stg_census__fsm_periods') }}
),

sen_needs as (
    select * from {{ ref('stg_census__sen_needs') }}
),

exclusions as (
    select * from {{ ref('stg_census__exclusions') }}
),

registration_upns as (
    select distinct
        load_batch_id,
        pupil_on_roll_table_id,
        upn
    from registrations
    where upn is not null and pupil_on_roll_table_id is not null
),

fsm_eligible_pupils as (
    select distinct registration_upns.upn as upn
    from fsm_periods
    inner join registration_upns
        on fsm_periods.load_batch_id = registration_upns.load_batch_id
        and fsm_periods.pupil_on_roll_table_id = registration_upns.pupil_on_roll_table_id
    where
        fsm_periods.fsm_start_date <= {{ feed_date() }}
        and (fsm_periods.fsm_end_date is null or fsm_periods.fsm_end_date >= {{ feed_date() }})
),

primary_needs as (
    select distinct on (registration_upns.upn)
        registration_upns.upn as upn,
        sen_needs.sen_type_code as sen_primary_need_code
    from sen_needs
    inner join registration_upns
        on sen_needs.load_batch_id = registration_upns.load_batch_id
        and sen_needs.pupil_on_roll_table_id = registration_upns.pupil_on_roll_table_id
    where sen_needs.sen_type_code is not null
    order by
        registration_upns.upn,
        sen_needs.census_reference_date desc nulls last,
        sen_needs.load_batch_id desc,
        sen_needs.sen_type_rank asc nulls last,
        sen_needs.source_row_number
),

exclusion_window as (
    -- 1 September of the academic year before the one holding the feed date
    select
        make_date(
            extract(year from {{ feed_date() }})::int
            - case when extract(month from {{ feed_date() }}) >= 9 then 1 else 2 end,
            9,
            1
        ) as window_start_date
),

pupil_exclusions as (
    select distinct
        registration_upns.upn as upn,
        exclusions.exclusion_start_date as exclusion_start_date,
        exclusions.exclusion_category_code as exclusion_category_code
    from exclusions
    inner join registration_upns
        on exclusions.load_batch_id = registration_upns.load_batch_id
        and exclusions.pupil_on_roll_table_id = registration_upns.pupil_on_roll_table_id
    cross join exclusion_window
    where
        exclusions.is_on_roll
        and exclusions.exclusion_start_date >= exclusion_window.window_start_date
        and exclusions.exclusion_start_date <= {{ feed_date() }}
),

exclusion_counts as (
    select
        upn as upn,
        count(*) filter (where exclusion_category_code = 'SUSP') as suspension_count,
        count(*) filter (where exclusion_category_code = 'PERM') as permanent_exclusion_count
    from pupil_exclusions
    group by upn
),

final as (
    select
        pupils_on_roll.upn as upn,
        fsm_eligible_pupils.upn is not null as is_fsm_eligible,
        case
            when pupils_on_roll.sen_provision_code in ('E', 'K') then primary_needs.sen_primary_need_code
        end as sen_primary_need_code,
        coalesce(exclusion_counts.suspension_count, 0)::integer as suspension_count,
        coalesce(exclusion_counts.permanent_exclusion_count, 0)::integer as permanent_exclusion_count
    from pupils_on_roll
    left join fsm_eligible_pupils
        on pupils_on_roll.upn = fsm_eligible_pupils.upn
    left join primary_needs
        on pupils_on_roll.upn = primary_needs.upn
    left join exclusion_counts
        on pupils_on_roll.upn = exclusion_counts.upn
)

select * from final
