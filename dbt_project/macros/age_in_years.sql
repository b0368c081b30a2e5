{#
    Completed years of age on `on_date` for someone born on `date_of_birth` (SHARING_RULES.md "Dates and ages").
    PostgreSQL's age() counts whole calendar months, so its year part is exactly the rule: born 2010-03-01 is 16 from
    2026-03-01 inclusive; born 29 February is a year older on 1 March in a non-leap year (on 29 February in a leap
    year). Both sides are cast to timestamp (without time zone) so the session time zone cannot move a birthday.
    Null when either date is null; negative when the date of birth is after `on_date`.
#}
{% macro age_in_years(date_of_birth, on_date) -%}
    date_part('year', age(({{ on_date }})::timestamp, ({{ date_of_birth }})::timestamp))::int
{%- endmacro %}
