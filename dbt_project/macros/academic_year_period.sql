{#
    The EES `time_period` of the academic year a date falls in (docs block `academic_year_of_census`):
    2026-10-01 -> '202627', 2027-01-21 -> '202627', 2026-08-31 -> '202526'.
#}
{% macro academic_year_period(date_column) -%}
    {%- set start_year -%}
        (extract(year from {{ date_column }})::int - (extract(month from {{ date_column }}) < 9)::int)
    {%- endset -%}
    ({{ start_year }}::text || lpad((({{ start_year }} + 1) % 100)::text, 2, '0'))
{%- endmacro %}
