{#- The cohort's minimum age: recipients.yml `yss.cohort.min_age_years` (the notice's "aged 13 or over"). -#}
{%- set min_age_years = 13 -%}

with

pupils_on_roll as (
    select * from {{ ref('int_pupils_on_roll_latest') }}
),

restrictions as (
    select * from {{ ref('int_yss_restrictions_resolved') }}
),

pupils_with_age as (
    select
        pupils_on_roll.*,
        {{ age_in_years('pupils_on_roll.date_of_birth', feed_date()) }} as age_on_feed_date
    from pupils_on_roll
),

cohort as (
    -- a pupil with no readable date of birth has no age and is not in the cohort
    select * from pupils_with_age
    where age_on_feed_date >= {{ min_age_years }}
),

cohort_with_restrictions as (
    select
        cohort.*,
        -- a pupil the restriction model does not know is treated as restricted (fail closed)
        coalesce(restrictions.is_yss_restricted, true) as is_yss_restricted
    from cohort
    left join restrictions
        on cohort.upn = restrictions.upn
),

final as (
    select
        upn::text as ledger_upn,
        forename::text as forename,
        surname::text as surname,
        date_of_birth::date as date_of_birth,
        address_line_1::text as address_line_1,
        address_line_2::text as address_line_2,
        town::text as town,
        postcode::text as postcode,
        -- further information: only for pupils who are not restricted
        {{ blank_when_restricted([
            {'name': 'upn', 'data_type': 'text'},
            {'name': 'school_urn', 'data_type': 'integer'},
            {'name': 'school_laestab', 'data_type': 'text'},
            {'name': 'school_name', 'data_type': 'text'},
            {'name': 'nc_year', 'data_type': 'text', 'expression': 'nc_year_code'},
            {'name': 'sex', 'data_type': 'text', 'expression': 'sex_code'},
            {'name': 'sen_provision_code', 'data_type': 'text'},
        ]) }}
    from cohort_with_restrictions
)

select * from final
