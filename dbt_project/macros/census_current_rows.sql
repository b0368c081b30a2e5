{#
    The rows of a census raw table that belong to a current return (raw.current_census_returns: the latest batch
    that held the school for that census term and year) and that no error-severity rule rejected
    (census_rows_kept). Adds the return's identity as `_schoolcensus_table_id`, `_laestab`, `_census_term`,
    `_census_year` and `_reference_date`, so a staging model keeps the term and year and a consumer can pick one.

    `parent` is the census table the row hangs from: 'pupilonroll' or 'pupilnolongeronroll' (joined on its table id
    within the batch to reach the return), or none when the row itself carries `schoolcensustableid`.
#}
{% macro census_current_rows(raw_table, census_table, parent=none) -%}
    select
        kept_rows.*,
        current_returns.schoolcensus_table_id as _schoolcensus_table_id,
        current_returns.laestab as _laestab,
        current_returns.census_term as _census_term,
        current_returns.census_year as _census_year,
        current_returns.reference_date as _reference_date
    from ({{ census_rows_kept(raw_table, census_table) }}) as kept_rows
    {%- if parent %}
    inner join {{ source('census', 'census_' ~ parent) }} as parent_rows
        on kept_rows._load_batch_id = parent_rows._load_batch_id
        and trim(kept_rows.{{ parent }}tableid) = trim(parent_rows.{{ parent }}tableid)
    inner join {{ source('census', 'current_census_returns') }} as current_returns
        on parent_rows._load_batch_id = current_returns.load_batch_id
        and trim(parent_rows.schoolcensustableid) = current_returns.schoolcensus_table_id
    {%- else %}
    inner join {{ source('census', 'current_census_returns') }} as current_returns
        on kept_rows._load_batch_id = current_returns.load_batch_id
        and trim(kept_rows.schoolcensustableid) = current_returns.schoolcensus_table_id
    {%- endif %}
{%- endmacro %}

{#
    The return columns that census_current_rows adds, renamed as every census staging model names them.
#}
{% macro census_return_columns() -%}
        _load_batch_id as load_batch_id,
        _row_number as source_row_number,
        _schoolcensus_table_id as school_census_table_id,
        _laestab as school_laestab,
        upper(_census_term) as census_term_code,
        _census_year as census_year,
        _reference_date as census_reference_date
{%- endmacro %}

{#
    A census whole number (sessions, ranks) as an integer; null when blank or not digits.
#}
{% macro census_integer(column) -%}
    case when trim({{ column }}) ~ '^[0-9]{1,9}$' then trim({{ column }})::integer end
{%- endmacro %}
