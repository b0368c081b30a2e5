with

source as (
    -- only the Spring census collects SEN need types (senneeds)
    {{ census_current_rows('census_senneeds', 'senneeds', 'pupilonroll') }}
),

final as (
    select
        {{ blank_as_null('senneedstableid') }} as sen_need_table_id,
        {{ blank_as_null('pupilonrolltableid') }} as pupil_on_roll_table_id,
        {{ census_return_columns() }},
        {{ census_integer('sentyperank') }} as sen_type_rank,
        upper({{ blank_as_null('sentype') }}) as sen_type_code
    from source
)

select * from final
