with

effective_opt_outs as (
    select * from {{ ref('int_opt_outs_effective') }}
),

final as (
    select
        upn,
        is_opted_out as is_yss_restricted,
        case when is_opted_out then cause_source end as restriction_source,
        case when is_opted_out then explanation end as restriction_reason,
        case when is_opted_out then cause_requested_on end as restriction_date
    from effective_opt_outs
    where scope_code = 'yss'
)

select * from final
