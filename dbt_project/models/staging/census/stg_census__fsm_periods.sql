with

autumn_periods as (
    -- Autumn names the table fsmperiodsonroll, Spring and Summer fsmperiod: the same items
    {{ census_current_rows('census_fsmperiodsonroll', 'fsmperiodsonroll', 'pupilonroll') }}
),

spring_summer_periods as (
    {{ census_current_rows('census_fsmperiod', 'fsmperiod', 'pupilonroll') }}
),

unioned as (
    select
        'fsmperiodsonroll' as census_table_name,
        fsmperiodsonrolltableid as fsm_period_table_id,
        pupilonrolltableid, fsmstartdate, fsmenddate, ukcountry,
        _load_batch_id, _row_number, _schoolcensus_table_id, _laestab, _census_term, _census_year, _reference_date
    from autumn_periods
    union all
    select
        'fsmperiod' as census_table_name,
        fsmperiodtableid as fsm_period_table_id,
        pupilonrolltableid, fsmstartdate, fsmenddate, ukcountry,
        _load_batch_id, _row_number, _schoolcensus_table_id, _laestab, _census_term, _census_year, _reference_date
    from spring_summer_periods
),

final as (
    select
        {{ blank_as_null('fsm_period_table_id') }} as fsm_period_table_id,
        {{ blank_as_null('pupilonrolltableid') }} as pupil_on_roll_table_id,
        {{ census_return_columns() }},
        census_table_name as census_table_name,
        {{ census_date('fsmstartdate') }} as fsm_start_date,
        {{ census_date('fsmenddate') }} as fsm_end_date,
        upper({{ blank_as_null('ukcountry') }}) as uk_country_code
    from unioned
)

select * from final
