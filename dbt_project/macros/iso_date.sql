{#
    An ISO 'YYYY-MM-DD' date (the CSV returns and CTF write dates so) as a date; null when blank or not a real date
    ('2025-02-29', '2025-13-01'), never an error. The loaders already reject such rows; this keeps the build safe.
#}
{% macro iso_date(column) -%}
    {%- set text = "nullif(trim(" ~ column ~ "), '')" -%}
    (
        case
            when {{ text }} ~ '^[0-9]{4}-(0[1-9]|1[0-2])-[0-9]{2}$'
                and substr({{ text }}, 9, 2)::int between 1 and extract(
                    day from (to_date(left({{ text }}, 7) || '-01', 'YYYY-MM-DD') + interval '1 month - 1 day')
                )
                then to_date(left({{ text }}, 10), 'YYYY-MM-DD')
        end
    )
{%- endmacro %}

{#
    A decimal number as numeric; null when blank or not a plain number.
#}
{% macro as_numeric(column) -%}
    case when trim({{ column }}) ~ '^-?[0-9]+(\.[0-9]+)?$' then trim({{ column }})::numeric end
{%- endmacro %}

{#
    'true'/'false' (any case, also Y/N, 1/0) as a boolean; null otherwise.
#}
{% macro as_boolean(column) -%}
    case
        when lower(trim({{ column }})) in ('true', 'y', 'yes', '1') then true
        when lower(trim({{ column }})) in ('false', 'n', 'no', '0') then false
    end
{%- endmacro %}
