{#
    The publish's feed date as a SQL date: `'<var feed_date>'::date` when the var is set, else `current_date`.
    The var must be an ISO date (YYYY-MM-DD); anything else stops the build rather than guess a date.
#}
{% macro feed_date() -%}
    {%- set value = var('feed_date', none) -%}
    {%- if value is none or (value | string | trim) == '' -%}
        current_date
    {%- else -%}
        {%- set text = value | string | trim -%}
        {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', text) -%}
            {{ exceptions.raise_compiler_error("var feed_date must be an ISO date like 2026-11-29, got '" ~ text ~ "'") }}
        {%- endif -%}
        '{{ text }}'::date
    {%- endif -%}
{%- endmacro %}
