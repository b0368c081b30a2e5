{#
    `relationships` over several columns: fails with each row of the model whose `columns` (all non-null) match no
    row of `to` on `fields`. Census rows point to each other by an id that is unique within a load batch only, so
    the batch is part of every foreign key.
#}
{% test composite_relationships(model, columns, to, fields) %}

{%- if columns | length != fields | length -%}
    {{ exceptions.raise_compiler_error("composite_relationships: columns and fields must be the same length") }}
{%- endif %}

with

child_rows as (
    select * from {{ model }}
),

parent_rows as (
    select * from {{ to }}
),

final as (
    select
        {%- for column in columns %}
        child_rows.{{ column }} as {{ column }}{{ "," if not loop.last }}
        {%- endfor %}
    from child_rows
    left join parent_rows
        on
        {%- for column in columns %}
        {{ "and " if not loop.first }}child_rows.{{ column }} = parent_rows.{{ fields[loop.index0] }}
        {%- endfor %}
    where
        {%- for column in columns %}
        child_rows.{{ column }} is not null and
        {%- endfor %}
        parent_rows.{{ fields[0] }} is null
)

select * from final

{% endtest %}
