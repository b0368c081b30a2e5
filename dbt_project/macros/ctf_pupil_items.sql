{#
    One row per item of a repeated group of a CTF pupil, for the CTF item staging models (attendance years, school
    histories, FSM periods, SEN needs and provisions): the pupil's `_load_batch_id`, `_row_number` and `upn` as
    loaded, the `item` (jsonb) and its `item_ordinal` (jsonb_items). A rejected pupil (`_rejected`: an error finding
    at load) is left out, as stg_ctf__pupils leaves it out, so every item row has its pupil.

    `repeated_group` is a jsonb column of raw.ctf_pupils, optionally with a path: 'attendance',
    "sen_history -> 'needs'".
#}
{% macro ctf_pupil_items(repeated_group) -%}
    select
        pupils._load_batch_id,
        pupils._row_number,
        pupils.upn,
        items.item,
        items.item_ordinal
    from {{ source('ctf', 'ctf_pupils') }} as pupils
    cross join lateral {{ jsonb_items('pupils.' ~ repeated_group) }}
    where not pupils._rejected
{%- endmacro %}
