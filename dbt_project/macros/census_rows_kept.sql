{#
    The rows of a census raw table that no error-severity validation rule rejected (raw.census_rejected_rows).
    Rejected rows stay in raw for the audit trail and the school's correction; nothing downstream reads them.
#}
{% macro census_rows_kept(raw_table, census_table) -%}
    select raw_rows.*
    from {{ source('census', raw_table) }} as raw_rows
    where not exists (
        select 1
        from {{ source('census', 'census_rejected_rows') }} as rejected_rows
        where rejected_rows.load_batch_id = raw_rows._load_batch_id
            and rejected_rows.table_name = '{{ census_table }}'
            and rejected_rows.row_number = raw_rows._row_number
    )
{%- endmacro %}
