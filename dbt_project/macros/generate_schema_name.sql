{#
    A model's schema is exactly its custom schema when it has one (`+schema: yss` -> `yss`), else the target's
    schema. dbt's default would prefix the target schema (`analytics_yss`); the recipient policy names the schema a
    recipient's feed is read from, so it must not depend on the target.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
