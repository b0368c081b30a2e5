{#
    A School Census date as the extract writes it ('2012-Mar-01 00:00:00', format %Y-%b-%d %H:%M:%S; an ISO
    '2012-03-01' is read too) as a date. Null when blank or not a real date ('2011-Feb-29', '2012-Mar-32', 'unknown'):
    one bad value must not stop the build, and an unknown date of birth keeps a pupil out of every age-based cohort.
    The source test `is_census_date` warns about such values.

    Parsing is to_date(..., 'YYYY-Mon-DD'), but only on text the patterns accept, and the day is checked against
    the month's length first, because to_date raises on an impossible day.
#}
{% macro census_date(column) -%}
    {%- set text = "nullif(trim(" ~ column ~ "), '')" -%}
    {%- set month_start -%}
        case
            when {{ text }} ~* '^[1-9][0-9]{3}-(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)-[0-9]{1,2}([ t]00:00(:00(\.0+)?)?)?$'
                then to_date(substring({{ text }} from '^[0-9]{4}-[A-Za-z]{3}') || '-01', 'YYYY-Mon-DD')
            when {{ text }} ~ '^[1-9][0-9]{3}-(0[1-9]|1[0-2])-[0-9]{2}$'
                then to_date(left({{ text }}, 7) || '-01', 'YYYY-MM-DD')
        end
    {%- endset -%}
    {%- set day_of_month = "substring(" ~ text ~ " from '^[0-9]{4}-[A-Za-z0-9]{2,3}-([0-9]{1,2})')::int" -%}
    (
        case
            when {{ day_of_month }} >= 1
                and ({{ month_start }}) + ({{ day_of_month }} - 1) < ({{ month_start }}) + interval '1 month'
                then ({{ month_start }}) + ({{ day_of_month }} - 1)
        end
    )
{%- endmacro %}
