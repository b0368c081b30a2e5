"""Disclosure-control settings shared by suppression and the audit: the small-count threshold and protection width.

Kept apart from :mod:`pupilshare.stats.suppression` so that :mod:`pupilshare.stats.audit` can read the same settings
without importing the code it audits.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DisclosureConfig(BaseModel):
    """How small a count must be to be hidden, and how uncertain a hidden count must stay.

    ``threshold``: a count from 1 to ``threshold - 1`` is hidden (primary suppression). Default 3 as in DfE exclusion
    tables; Local Authorities often use 5 or 10.
    ``protection``: every hidden count's feasible range ``[lo, hi]`` must have ``floor(hi) - ceil(lo) >= protection``
    (see :mod:`pupilshare.stats` for the exact definition). ``None`` means "equal to ``threshold``".
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    threshold: int = Field(default=3, ge=2, description="Counts 1..threshold-1 are hidden; 1 would hide nothing.")
    protection: int | None = Field(default=None, ge=1, description="Minimum width of a hidden count's range.")

    @property
    def required_width(self) -> int:
        """The protection width in force: ``protection`` if set, else ``threshold``."""
        return self.threshold if self.protection is None else self.protection
