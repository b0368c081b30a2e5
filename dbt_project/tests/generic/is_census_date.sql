{#
    Fails with each row whose `column_name` is not blank but is not a readable census date (macro census_date):
    such a value silently becomes null downstream (an unknown date of birth keeps a pupil out of every cohort), so
    it should be seen and sent back to the school. Used on raw source columns, usually with severity warn.
#}
{% test is_census_date(model, column_name) %}

with

model_rows as (
    select * from {{ model }}
),

final as (
    select
        {{ column_name }} as unreadable_value
    from model_rows
    where {{ blank_as_null(column_name) }} is not null
        and {{ census_date(column_name) }} is null
)

select * from final

{% endtest %}
