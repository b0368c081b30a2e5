{#
    The elements of a jsonb array column as rows `(item, item_ordinal)`, for a `cross join lateral`; an absent or
    non-array value gives no rows. Used to flatten the repeated groups the CTF loader keeps as jsonb.
#}
{% macro jsonb_items(json_expression) -%}
    jsonb_array_elements(
        case when jsonb_typeof({{ json_expression }}) = 'array' then {{ json_expression }} else '[]'::jsonb end
    ) with ordinality as items (item, item_ordinal)
{%- endmacro %}
