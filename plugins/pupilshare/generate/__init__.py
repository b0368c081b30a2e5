"""Synthetic data generators: realistic, reproducible stand-ins for the returns the platform loads.

No real pupil data ever: these make the larger samples that tests, demos and scale runs use.
"""

from __future__ import annotations

from pupilshare.generate.census import (
    Address,
    CensusExtract,
    CensusGeneratorError,
    Pupil,
    School,
    build_census_extract,
    generate_census_extract,
    write_census_extract,
)
from pupilshare.generate.norfolk import NORFOLK_POSTCODE_DISTRICTS, PostcodeDistrict

__all__ = [
    "NORFOLK_POSTCODE_DISTRICTS",
    "Address",
    "CensusExtract",
    "CensusGeneratorError",
    "PostcodeDistrict",
    "Pupil",
    "School",
    "build_census_extract",
    "generate_census_extract",
    "write_census_extract",
]
