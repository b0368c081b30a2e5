with

source as (
    select * from {{ source('eyfs', 'eyfs_results') }}
    where not _rejected
),

final as (
    select
        _load_batch_id as load_batch_id,
        _row_number as source_row_number,
        upper({{ blank_as_null('upn') }}) as upn,
        case when trim(school_urn) ~ '^[0-9]{1,9}$' then trim(school_urn)::integer end as school_urn,
        {{ blank_as_null('academic_year') }} as academic_year,
        -- one column per early learning goal (2021 framework): 1 emerging, 2 expected, A not assessed
        upper({{ blank_as_null('listening_attention_understanding') }}) as listening_attention_understanding_code,
        upper({{ blank_as_null('speaking') }}) as speaking_code,
        upper({{ blank_as_null('self_regulation') }}) as self_regulation_code,
        upper({{ blank_as_null('managing_self') }}) as managing_self_code,
        upper({{ blank_as_null('building_relationships') }}) as building_relationships_code,
        upper({{ blank_as_null('gross_motor_skills') }}) as gross_motor_skills_code,
        upper({{ blank_as_null('fine_motor_skills') }}) as fine_motor_skills_code,
        upper({{ blank_as_null('comprehension') }}) as comprehension_code,
        upper({{ blank_as_null('word_reading') }}) as word_reading_code,
        upper({{ blank_as_null('writing') }}) as writing_code,
        upper({{ blank_as_null('number') }}) as number_code,
        upper({{ blank_as_null('numerical_patterns') }}) as numerical_patterns_code,
        upper({{ blank_as_null('past_and_present') }}) as past_and_present_code,
        upper({{ blank_as_null('people_culture_communities') }}) as people_culture_communities_code,
        upper({{ blank_as_null('natural_world') }}) as natural_world_code,
        upper({{ blank_as_null('creating_with_materials') }}) as creating_with_materials_code,
        upper({{ blank_as_null('being_imaginative_expressive') }}) as being_imaginative_expressive_code
    from source
)

select * from final
