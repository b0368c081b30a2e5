with

source as (
    {{ census_rows_kept('census_school', 'school') }}
),

final as (
    select
        {{ blank_as_null('schooltableid') }} as school_table_id,
        {{ blank_as_null('schoolcensustableid') }} as school_census_table_id,
        _load_batch_id as load_batch_id,
        _row_number as source_row_number,
        {{ blank_as_null('schoolname') }} as school_name,
        upper({{ blank_as_null('phase') }}) as school_phase_code,
        {{ blank_as_null('type') }} as school_type_code,
        upper({{ blank_as_null('governance') }}) as school_governance_code,
        upper({{ blank_as_null('intake') }}) as school_intake_code,
        upper({{ blank_as_null('lowestncyeargroup') }}) as lowest_nc_year_code,
        upper({{ blank_as_null('highestncyeargroup') }}) as highest_nc_year_code
    from source
)

select * from final
