with

pupils_on_roll as (
    select * from {{ ref('int_pupils_on_roll_latest') }}
),

pupil_registrations as (
    select * from {{ ref('stg_census__pupils') }}
),

census_yssa_refusals as (
    -- every registration of the pupil in the current batch counts, not only the main one: if either school of a
    -- dual-registered pupil recorded yssa = No, the pupil is restricted (fail closed)
    select
        pupils_on_roll.upn as upn,
        count(*) as refusal_count,
        string_agg(
            pupil_registrations.source_row_number::text,
            ', '
            order by pupil_registrations.source_row_number
        ) as refusal_row_numbers
    from pupils_on_roll
    inner join pupil_registrations
        on pupils_on_roll.load_batch_id = pupil_registrations.load_batch_id
        and pupils_on_roll.upn = pupil_registrations.upn
    where pupil_registrations.yssa_code = 'No'
    group by pupils_on_roll.upn
),

final as (
    select
        pupils_on_roll.upn as upn,
        census_yssa_refusals.upn is not null as is_yss_restricted,
        case
            when census_yssa_refusals.upn is not null then 'census_yssa'
        end as restriction_source,
        case
            when census_yssa_refusals.upn is not null
                then 'census yssa = No (load batch ' || pupils_on_roll.load_batch_id::text
                    || ', pupilonroll '
                    || case when census_yssa_refusals.refusal_count = 1 then 'row ' else 'rows ' end
                    || census_yssa_refusals.refusal_row_numbers || ')'
        end as restriction_reason,
        case
            when census_yssa_refusals.upn is not null then pupils_on_roll.census_reference_date
        end as restriction_date
    from pupils_on_roll
    left join census_yssa_refusals
        on pupils_on_roll.upn = census_yssa_refusals.upn
)

select * from final
