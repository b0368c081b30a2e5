{#
    Academic age (SHARING_RULES.md "Dates and ages", used by NCCIS cohorts): completed years on the 31 August
    before the start of the academic year holding `on_date`. An academic year starts on 1 September, so for feed
    date 2026-11-29 (academic year 2026/27) it is the age on 2026-08-31, and for 2027-08-31 (still 2026/27) too;
    from 2027-09-01 it is the age on 2027-08-31. Null when either date is null.
#}
{% macro academic_age(date_of_birth, on_date) -%}
    {%- set year_start -%}
        (extract(year from {{ on_date }})::int - (extract(month from {{ on_date }}) < 9)::int)
    {%- endset -%}
    {{ age_in_years(date_of_birth, 'make_date(' ~ year_start ~ ', 8, 31)') }}
{%- endmacro %}
