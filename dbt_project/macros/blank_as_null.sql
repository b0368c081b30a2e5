{#
    A raw census text value with surrounding spaces removed; null when nothing is left. Census extracts write a
    missing value as an empty string.
#}
{% macro blank_as_null(column) -%}
    nullif(trim({{ column }}), '')
{%- endmacro %}
