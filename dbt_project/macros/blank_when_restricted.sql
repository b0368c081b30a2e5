{#
    The columns a YSS-restricted row leaves empty (docs block `yss_restriction`; SHARING_RULES.md "Recipients"):
    for each entry of `columns`, its `expression` (default: its `name`) when the row is not restricted, else null,
    cast to its `data_type` and named `name`, comma-separated in the given order:

        {'name': 'sex', 'data_type': 'text', 'expression': 'sex_code'}
        -> case when not is_yss_restricted then sex_code end::text as sex

    Used by every mart that YSS restriction reaches (yss_feed, nccis_feed), so "restricted" means the same there.
    The key and identity columns are written by the model itself and kept. A null flag also gives null (fail closed);
    the models still default a pupil the restriction model does not know to restricted.
#}
{% macro blank_when_restricted(columns, restricted_flag='is_yss_restricted') -%}
    {#- one column a line, at the indent of a model's select list, so the compiled SQL reads like hand-written SQL -#}
    {%- for column in columns -%}
        {%- set value = column.expression | default(column.name) -%}
        {%- if not loop.first %},
        {% endif -%}
        case when not {{ restricted_flag }} then {{ value }} end::{{ column.data_type }} as {{ column.name }}
    {%- endfor -%}
{%- endmacro %}
