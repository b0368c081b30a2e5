"""Disclosure control for published statistics: nobody can be identified from a table we publish.

How the parts fit, each step a gate that fails closed (SHARING_RULES.md, "Disclosure control for statistics")::

    build table   suppression.build_table / link_tables    tidy counts -> cells + additivity constraints
    primary       suppression.find_primary_cells           counts 1..threshold-1 hidden; zero stays 0
    secondary     suppression.find_secondary_cells         more cells hidden until every hidden cell is protected
    derived       suppression.find_derived_to_hide         rates on a hidden numerator or denominator hidden too
    audit (gate)  audit.assert_publishable                 independent LP audit; DisclosureRiskError if exposed
    EES file      ees.write_ees_files                      tidy CSV + .meta.csv, hidden cells written as ``c``
    check (gate)  ees.assert_valid_ees                     DfE screener rules; EESFormatError if broken
    publish

Protection, the one definition used by both suppression and the audit: for a hidden count, ``lo`` and ``hi`` are the
least and greatest values it can take over all real, non-negative values of the hidden cells that keep every
additivity constraint with the published cells fixed. It is protected when ``floor(hi) - ceil(lo) >= protection``
(``DisclosureConfig.required_width``; default: the threshold). Every hidden count, secondary ones included, must be
protected.
"""

from pupilshare.stats.audit import (
    AuditInputError,
    AuditReport,
    CellRange,
    DisclosureRiskError,
    Exposure,
    assert_publishable,
    audit_suppression,
)
from pupilshare.stats.config import DisclosureConfig
from pupilshare.stats.ees import (
    GSS_SYMBOLS,
    EESColumn,
    EESFiles,
    EESFormatError,
    assert_valid_ees,
    check_ees_file,
    write_ees_files,
)
from pupilshare.stats.suppression import (
    HIDDEN_SYMBOL,
    TOTAL,
    CellLabel,
    Constraint,
    SuppressionError,
    SuppressionResult,
    TableSet,
    TableSetError,
    build_table,
    combine_tables,
    find_derived_to_hide,
    find_primary_cells,
    find_secondary_cells,
    link_cells,
    link_tables,
    make_cell_id,
    render_table,
    suppress_table_set,
)

__all__ = [
    "GSS_SYMBOLS",
    "HIDDEN_SYMBOL",
    "TOTAL",
    "AuditInputError",
    "AuditReport",
    "CellLabel",
    "CellRange",
    "Constraint",
    "DisclosureConfig",
    "DisclosureRiskError",
    "EESColumn",
    "EESFiles",
    "EESFormatError",
    "Exposure",
    "SuppressionError",
    "SuppressionResult",
    "TableSet",
    "TableSetError",
    "assert_publishable",
    "assert_valid_ees",
    "audit_suppression",
    "build_table",
    "check_ees_file",
    "combine_tables",
    "find_derived_to_hide",
    "find_primary_cells",
    "find_secondary_cells",
    "link_cells",
    "link_tables",
    "make_cell_id",
    "render_table",
    "suppress_table_set",
    "write_ees_files",
]
