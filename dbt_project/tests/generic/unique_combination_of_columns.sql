{#
    Fails with one row per combination of `combination_of_columns` that occurs more than once: the grain test for
    models keyed by more than one column (census ids are unique within a load batch only).
#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

with

model_rows as (
    select * from {{ model }}
),

final as (
    select
        {%- for column in combination_of_columns %}
        {{ column }} as {{ column }},
        {%- endfor %}
        count(*) as row_count
    from model_rows
    group by {{ combination_of_columns | join(', ') }}
    having count(*) > 1
)

select * from final

{% endtest %}
