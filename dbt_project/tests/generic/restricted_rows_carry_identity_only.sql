{#
    restricted rows carry identity only: fails with each restricted row of the model (per `restrictions`) that
    has a value in any column other than `key_column` and `identity_columns`. The columns checked are read from the
    built relation, not listed here, so a column added to the mart later is checked too (fail closed). An empty
    string is a value and fails. `leaked_columns` names the offending columns.
#}
{% test restricted_rows_carry_identity_only(
    model,
    key_column,
    identity_columns,
    restrictions,
    restrictions_key_column,
    restricted_flag_column
) %}

{%- set further_columns = [] -%}
{%- if execute -%}
    {%- set kept = [key_column | lower] -%}
    {%- for column in identity_columns -%}
        {%- do kept.append(column | lower) -%}
    {%- endfor -%}
    {%- set model_columns = adapter.get_columns_in_relation(model) -%}
    {%- if model_columns | length == 0 -%}
        {{ exceptions.raise_compiler_error("restricted_rows_carry_identity_only: no columns found for " ~ model) }}
    {%- endif -%}
    {%- for column in model_columns -%}
        {%- if column.name | lower not in kept -%}
            {%- do further_columns.append(column.name) -%}
        {%- endif -%}
    {%- endfor -%}
{%- endif %}

with

model_rows as (
    select * from {{ model }}
),

restrictions as (
    select * from {{ restrictions }}
),

restricted_keys as (
    select {{ restrictions_key_column }} as restricted_key
    from restrictions
    where {{ restricted_flag_column }}
),

restricted_rows as (
    select model_rows.*
    from model_rows
    inner join restricted_keys
        on model_rows.{{ key_column }} = restricted_keys.restricted_key
),

final as (
    select
        {{ key_column }} as {{ key_column }},
        array_remove(
            array[
                {%- for column in further_columns %}
                case when {{ adapter.quote(column) }} is not null then '{{ column }}' end{{ "," if not loop.last }}
                {%- endfor %}
            ]::text[],
            null
        ) as leaked_columns
    from restricted_rows
    where
        {%- for column in further_columns %}
        {{ adapter.quote(column) }} is not null{{ " or" if not loop.last }}
        {%- else %}
        false
        {%- endfor %}
)

select * from final

{% endtest %}
