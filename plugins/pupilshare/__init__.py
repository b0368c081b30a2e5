"""pupilshare: a Local Authority's pupil-data platform.

Loads school returns into PostgreSQL, builds one minimised feed per recipient with dbt, gates every publish with
Great Expectations, delivers feeds and records every disclosure. The domain code here runs without Airflow; the
thin `pupilshare.airflow` corner holds what only Airflow needs.
"""

from pathlib import Path

__version__ = "0.1.0"

#: The repository root (this package lives in ``plugins/pupilshare``).
PROJECT_ROOT = Path(__file__).resolve().parents[2]
