{#
    The Sure Start Children's Centres' feed (recipients.yml `sure_start`): one set per children's centre.
    Reception pupils of primary, first and infant schools routed to a centre by their home postcode
    (int_sure_start_pupils_routed), with their EYFS profile results (latest results file holding the pupil):
    every early learning goal and GLD. A pupil with no EYFS results, or whose postcode no reach area covers, is not
    in the feed. A pupil opted out of sure_start (scope sure_start or all) on or before the feed date is excluded;
    a pupil the opt-out model does not know is excluded too (fail closed).
#}
with

routed_pupils as (
    select * from {{ ref('int_sure_start_pupils_routed') }}
),

eyfs_results as (
    select * from {{ ref('int_eyfs_results_gld') }}
),

opt_outs as (
    select * from {{ ref('int_opt_outs_effective') }}
),

latest_results as (
    select distinct on (upn) *
    from eyfs_results
    where upn is not null
    order by upn, load_batch_id desc, source_row_number desc
),

not_opted_out as (
    select routed_pupils.*
    from routed_pupils
    inner join opt_outs
        on routed_pupils.upn = opt_outs.upn
        and opt_outs.scope_code = 'sure_start'
    where
        not opt_outs.is_opted_out
        and routed_pupils.children_centre_id is not null
),

final as (
    select
        not_opted_out.upn::text as ledger_upn,
        not_opted_out.children_centre_id::text as children_centre_id,
        not_opted_out.forename::text as forename,
        not_opted_out.surname::text as surname,
        not_opted_out.school_urn::integer as school_urn,
        not_opted_out.school_name::text as school_name,
        latest_results.listening_attention_understanding_code::text as listening_attention_understanding,
        latest_results.speaking_code::text as speaking,
        latest_results.self_regulation_code::text as self_regulation,
        latest_results.managing_self_code::text as managing_self,
        latest_results.building_relationships_code::text as building_relationships,
        latest_results.gross_motor_skills_code::text as gross_motor_skills,
        latest_results.fine_motor_skills_code::text as fine_motor_skills,
        latest_results.comprehension_code::text as comprehension,
        latest_results.word_reading_code::text as word_reading,
        latest_results.writing_code::text as writing,
        latest_results.number_code::text as number,
        latest_results.numerical_patterns_code::text as numerical_patterns,
        latest_results.past_and_present_code::text as past_and_present,
        latest_results.people_culture_communities_code::text as people_culture_communities,
        latest_results.natural_world_code::text as natural_world,
        latest_results.creating_with_materials_code::text as creating_with_materials,
        latest_results.being_imaginative_expressive_code::text as being_imaginative_expressive,
        latest_results.has_good_level_of_development::boolean as has_good_level_of_development
    from not_opted_out
    inner join latest_results
        on not_opted_out.upn = latest_results.upn
)

select * from final
