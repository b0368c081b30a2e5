{#-
    NCMP children measured per BMI category, per school, school year group and academic year.
    Rules: docs block `stats_ncmp_prevalence`.
-#}

with

classified as (
    select * from {{ ref('int_ncmp_measurements_classified') }}
),

schools as (
    select * from {{ ref('int_census_schools_current') }}
),

latest_per_year_group as (
    -- a child's latest NCMP row for each year group: a later "not measured" row removes an earlier measurement
    select distinct on (upn, nc_year_code)
        *
    from classified
    where nc_year_code in ({{ sql_text_list(var('health_nc_years')) }})
    order by upn, nc_year_code, load_batch_id desc, source_row_number desc
),

measured_children as (
    select
        ncmp_time_period as time_period,
        school_urn as school_urn,
        case nc_year_code when 'R' then 'Reception' when '6' then 'Year 6' end as nc_year,
        bmi_category_code as bmi_category_code
    from latest_per_year_group
    where is_measured and bmi_category_code is not null and school_urn is not null
),

categories as (
    select category_code, category_label
    from (
        values
        ('underweight', 'Underweight'),
        ('healthy_weight', 'Healthy weight'),
        ('overweight', 'Overweight'),
        ('obese', 'Obese (excluding severely obese)'),
        ('severely_obese', 'Severely obese')
    ) as category_list (category_code, category_label)
),

year_groups_measured as (
    select distinct time_period, school_urn, nc_year
    from measured_children
),

category_grid as (
    -- every category for every school and year group with a measured child, so a zero is published as 0
    select
        year_groups_measured.time_period,
        year_groups_measured.school_urn,
        year_groups_measured.nc_year,
        categories.category_code,
        categories.category_label
    from year_groups_measured
    cross join categories
),

counted as (
    select
        category_grid.time_period,
        category_grid.school_urn,
        category_grid.nc_year,
        category_grid.category_label,
        count(measured_children.bmi_category_code) as children_measured
    from category_grid
    left join measured_children
        on category_grid.time_period = measured_children.time_period
        and category_grid.school_urn = measured_children.school_urn
        and category_grid.nc_year = measured_children.nc_year
        and category_grid.category_code = measured_children.bmi_category_code
    group by
        category_grid.time_period,
        category_grid.school_urn,
        category_grid.nc_year,
        category_grid.category_label
),

final as (
    select
        counted.time_period::text as time_period,
        'Academic year'::text as time_identifier,
        counted.school_urn::integer as school_urn,
        schools.school_laestab::text as school_laestab,
        schools.school_name::text as school_name,
        schools.school_phase::text as school_phase,
        counted.nc_year::text as nc_year,
        counted.category_label::text as bmi_category,
        counted.children_measured::integer as children_measured
    from counted
    inner join schools
        on counted.school_urn = schools.school_urn
)

select * from final
