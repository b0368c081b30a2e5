"""`pupilshare run`'s DAG order, and running a part of it."""

import datetime as dt

import pytest

from pupilshare.airflow.runner import PIPELINE_DAG_IDS, run_pipeline
from pupilshare.settings import Settings


def test_pipeline__ingest_runs_first():
    assert PIPELINE_DAG_IDS[0] == "pupilshare_ingest"


def test_run_pipeline__a_dag_outside_the_pipeline_is_refused_before_anything_runs(tmp_path):
    settings = Settings(database_url="postgresql://nobody@127.0.0.1:1/none", data_dir=tmp_path)
    with pytest.raises(ValueError, match="pupilshare_publish_nobody"):
        run_pipeline(settings, dt.date(2026, 11, 29), ("pupilshare_ingest", "pupilshare_publish_nobody"))
