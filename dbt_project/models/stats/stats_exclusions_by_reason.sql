{#-
    Suspensions and permanent exclusions per school, academic year, category and reason, from the termly
    exclusions of every current census return. Rules: docs block `stats_exclusions`.
-#}

with

exclusions as (
    select * from {{ ref('stg_census__exclusions') }}
),

school_returns as (
    select * from {{ ref('stg_census__school_returns') }}
),

current_returns as (
    select * from {{ ref('stg_census__current_returns') }}
),

schools as (
    select * from {{ ref('int_census_schools_current') }}
),

exclusions_placed as (
    select
        {{ academic_year_period('coalesce(exclusions.exclusion_start_date, exclusions.census_reference_date)') }}
            as time_period,
        school_returns.school_urn as school_urn,
        case exclusions.exclusion_category_code
            when 'SUSP' then 'Suspension'
            when 'FIXD' then 'Suspension'
            when 'PERM' then 'Permanent exclusion'
            else 'Unclassified'
        end as exclusion_category,
        case exclusions.exclusion_reason_1_code
            when 'PP' then 'Physical assault against a pupil'
            when 'PA' then 'Physical assault against an adult'
            when 'VP' then 'Verbal abuse or threatening behaviour against a pupil'
            when 'VA' then 'Verbal abuse or threatening behaviour against an adult'
            when 'BU' then 'Bullying'
            when 'RA' then 'Racist abuse'
            when 'LG' then 'Abuse against sexual orientation or gender identity'
            when 'DS' then 'Abuse relating to disability'
            when 'SM' then 'Sexual misconduct'
            when 'DA' then 'Drug and alcohol related'
            when 'DM' then 'Damage'
            when 'TH' then 'Theft'
            when 'PH' then 'Persistent disruptive behaviour'
            when 'MT' then 'Inappropriate use of social media or online technology'
            when 'WP' then 'Use or threat of use of an offensive weapon or prohibited item'
            when 'OW' then 'Wilful and repeated transgression of protective measures'
            when 'OT' then 'Other'
            else 'Unclassified'
        end as exclusion_reason
    from exclusions
    inner join school_returns
        on exclusions.load_batch_id = school_returns.load_batch_id
        and exclusions.school_census_table_id = school_returns.school_census_table_id
    where
        school_returns.school_urn is not null
        and coalesce(exclusions.exclusion_start_date, exclusions.census_reference_date) is not null
),

exclusion_counts as (
    select
        time_period as time_period,
        school_urn as school_urn,
        exclusion_category as exclusion_category,
        exclusion_reason as exclusion_reason,
        count(*) as exclusions
    from exclusions_placed
    group by time_period, school_urn, exclusion_category, exclusion_reason
),

schools_in_period as (
    -- every school with a census return in the year or an exclusion in it: a published 0 is a real zero
    select
        {{ academic_year_period('current_returns.census_reference_date') }} as time_period,
        school_returns.school_urn as school_urn
    from current_returns
    inner join school_returns
        on current_returns.load_batch_id = school_returns.load_batch_id
        and current_returns.school_census_table_id = school_returns.school_census_table_id
    where school_returns.school_urn is not null and current_returns.census_reference_date is not null
    union
    select
        time_period as time_period,
        school_urn as school_urn
    from exclusion_counts
),

published_values as (
    select distinct
        time_period as time_period,
        exclusion_category as exclusion_category,
        exclusion_reason as exclusion_reason
    from exclusion_counts
),

school_value_grid as (
    select
        schools_in_period.time_period as time_period,
        schools_in_period.school_urn as school_urn,
        published_values.exclusion_category as exclusion_category,
        published_values.exclusion_reason as exclusion_reason
    from schools_in_period
    inner join published_values
        on schools_in_period.time_period = published_values.time_period
),

final as (
    select
        school_value_grid.time_period::text as time_period,
        'Academic year'::text as time_identifier,
        school_value_grid.school_urn::integer as school_urn,
        schools.school_laestab::text as school_laestab,
        schools.school_name::text as school_name,
        schools.school_phase::text as school_phase,
        school_value_grid.exclusion_category::text as exclusion_category,
        school_value_grid.exclusion_reason::text as exclusion_reason,
        coalesce(exclusion_counts.exclusions, 0)::integer as exclusions
    from school_value_grid
    inner join schools
        on school_value_grid.school_urn = schools.school_urn
    left join exclusion_counts
        on school_value_grid.time_period = exclusion_counts.time_period
        and school_value_grid.school_urn = exclusion_counts.school_urn
        and school_value_grid.exclusion_category = exclusion_counts.exclusion_category
        and school_value_grid.exclusion_reason = exclusion_counts.exclusion_reason
)

select * from final
