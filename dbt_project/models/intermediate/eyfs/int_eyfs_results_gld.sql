with

results as (
    select * from {{ ref('stg_eyfs__results') }}
),

goals_counted as (
    select
        results.*,
        -- the 12 GLD goals: communication and language (2), PSED (3), physical development (2), literacy (3),
        -- mathematics (2); a blank or A (not assessed) outcome is not expected
        (coalesce(listening_attention_understanding_code = '2', false))::int
            + (coalesce(speaking_code = '2', false))::int
            + (coalesce(self_regulation_code = '2', false))::int
            + (coalesce(managing_self_code = '2', false))::int
            + (coalesce(building_relationships_code = '2', false))::int
            + (coalesce(gross_motor_skills_code = '2', false))::int
            + (coalesce(fine_motor_skills_code = '2', false))::int
            + (coalesce(comprehension_code = '2', false))::int
            + (coalesce(word_reading_code = '2', false))::int
            + (coalesce(writing_code = '2', false))::int
            + (coalesce(number_code = '2', false))::int
            + (coalesce(numerical_patterns_code = '2', false))::int as gld_goals_expected_count
    from results
),

final as (
    select
        *,
        gld_goals_expected_count = 12 as has_good_level_of_development
    from goals_counted
)

select * from final
