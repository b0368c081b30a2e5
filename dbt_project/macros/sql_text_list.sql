{#
    A list of values as a SQL list of text literals: ['11', 'R'] -> '11', 'R' (single quotes doubled).
    For `in (...)` filters whose values come from a var mirrored from the recipient policy.
#}
{% macro sql_text_list(values) -%}
    {%- for value in values -%}
        '{{ value | string | replace("'", "''") }}'{{ ", " if not loop.last }}
    {%- endfor -%}
{%- endmacro %}
