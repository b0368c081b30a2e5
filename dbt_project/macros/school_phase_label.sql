{#
    The DfE label of a census school phase code (docs block `stats_pupil_characteristics`); Unclassified when blank.
#}
{% macro school_phase_label(phase_code) -%}
    case {{ phase_code }}
        when 'NS' then 'Nursery'
        when 'PS' then 'Primary'
        when 'MP' then 'Middle deemed primary'
        when 'MS' then 'Middle deemed secondary'
        when 'SS' then 'Secondary'
        when 'SP' then 'Special'
        when 'AT' then 'All-through'
        when 'EY' then 'Early years'
        when 'PR' then 'Pupil referral unit'
        else 'Unclassified'
    end
{%- endmacro %}
