{#
    Every NCMP row that loaded (measured or not), with its BMI, BMI SDS and centile from rcpchgrowth
    (stg_ncmp__bmi_results, computed at load) and the NCMP population category decided here from the UK90 centile
    (docs block `ncmp_bmi_category`; thresholds are the vars `ncmp_*_centile`, each bound inclusive):

        centile <= 2      underweight
        centile >= 99.6   severely_obese
        centile >= 95     obese
        centile >= 85     overweight
        otherwise         healthy_weight

    A row with no centile (not measured, or rcpchgrowth could not classify it) has no category.
    `is_latest_for_child`: the child's latest NCMP row (later load batch, then later row) - a later export saying
    the child was not measured (an opt-out, say) supersedes an earlier measurement. `ncmp_time_period`: the academic
    year of the measurement date (EES time period, 202627).
#}
with

measurements as (
    select * from {{ ref('stg_ncmp__measurements') }}
),

bmi_results as (
    select * from {{ ref('stg_ncmp__bmi_results') }}
),

joined as (
    select
        measurements.*,
        bmi_results.growth_reference_code as growth_reference_code,
        bmi_results.bmi as bmi,
        bmi_results.bmi_sds as bmi_sds,
        bmi_results.bmi_centile as bmi_centile,
        bmi_results.unclassified_reason as unclassified_reason
    from measurements
    left join bmi_results
        on measurements.measurement_id = bmi_results.measurement_id
),

categorised as (
    select
        joined.*,
        case
            when bmi_centile is null then null
            when bmi_centile <= {{ var('ncmp_underweight_at_or_below_centile') }} then 'underweight'
            when bmi_centile >= {{ var('ncmp_severely_obese_at_or_above_centile') }} then 'severely_obese'
            when bmi_centile >= {{ var('ncmp_obese_at_or_above_centile') }} then 'obese'
            when bmi_centile >= {{ var('ncmp_overweight_at_or_above_centile') }} then 'overweight'
            else 'healthy_weight'
        end as bmi_category_code,
        row_number() over (
            partition by upn
            order by load_batch_id desc, source_row_number desc
        ) = 1 as is_latest_for_child
    from joined
),

final as (
    select
        measurement_id,
        load_batch_id,
        source_row_number,
        upn,
        forename,
        surname,
        date_of_birth,
        sex_code,
        school_urn,
        nc_year_code,
        measurement_date,
        case when measurement_date is not null then {{ academic_year_period('measurement_date') }} end
            as ncmp_time_period,
        height_cm,
        weight_kg,
        not_measured_reason_code,
        is_parental_opt_out,
        measurement_date is not null and not_measured_reason_code is null as is_measured,
        growth_reference_code,
        bmi,
        bmi_sds,
        bmi_centile,
        unclassified_reason,
        bmi_category_code,
        is_latest_for_child
    from categorised
)

select * from final
