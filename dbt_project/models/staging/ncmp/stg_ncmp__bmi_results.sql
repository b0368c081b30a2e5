with

source as (
    select * from {{ source('ncmp', 'ncmp_bmi_results') }}
),

final as (
    select
        _load_batch_id || '-' || _row_number as measurement_id,
        _load_batch_id as load_batch_id,
        _row_number as source_row_number,
        reference as growth_reference_code,
        rcpchgrowth_version as rcpchgrowth_version,
        bmi as bmi,
        bmi_sds as bmi_sds,
        bmi_centile as bmi_centile,
        unclassified_reason as unclassified_reason
    from source
)

select * from final
