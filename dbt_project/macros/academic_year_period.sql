{#
    The EES `time_period` of the academic year a date falls in (docs block `academic_year_of_census`):
    2026-10-01 -> '202627', 2027-01-21 -> '202627', 2026-08-31 -> '202526'.
#}
{% macro academic_year_period(date_column) -%}
    (
        (extract(year from {{ date_column }})::int - case when extract(month from {{ date_column }}) < 9 then 1 else 0 end)::text
        || lpad(
            ((extract(year from {{ date_column }})::int - case when extract(month from {{ date_column }}) < 9 then 1 else 0 end + 1) % 100)::text,
            2,
            '0'
        )
    )
{%- endmacro %}

{#
    The DfE label of a census school phase code (docs block `stats_pupil_characteristics`); Unclassified when blank.
#}
{% macro school_phase_label(phase_code) -%}
    case {{ phase_code }}
        when 'NS' then 'Nursery'
        when 'PS' then 'Primary'
        when 'MP' then 'Middle deemed primary'
        when 'MS' then 'Middle deemed secondary'
        when 'SS' then 'Secondary'
        when 'SP' then 'Special'
        when 'AT' then 'All-through'
        when 'EY' then 'Early years'
        when 'PR' then 'Pupil referral unit'
        else 'Unclassified'
    end
{%- endmacro %}
