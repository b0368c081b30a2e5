with

source as (
    {{ census_rows_kept('census_schoolcensus', 'schoolcensus') }}
),

final as (
    select
        {{ blank_as_null('schoolcensustableid') }} as school_census_table_id,
        _load_batch_id as load_batch_id,
        _row_number as source_row_number,
        upper({{ blank_as_null('term') }}) as census_term_code,
        case
            when trim(year) ~ '^[0-9]{4}$' then trim(year)::int
        end as census_year,
        {{ census_date('referencedate') }} as census_reference_date,
        upper({{ blank_as_null('sourcelevel') }}) as source_level_code,
        {{ blank_as_null('lea') }} as la_code,
        {{ blank_as_null('estab') }} as school_estab,
        {{ blank_as_null('lea') }} || {{ blank_as_null('estab') }} as school_laestab,
        case
            when trim(urn) ~ '^[0-9]{1,9}$' then trim(urn)::integer
        end as school_urn
    from source
)

select * from final
