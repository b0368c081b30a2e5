"""LA worklists: build the LA's own worklists (no external recipient) in schema ``la_worklists``."""

from pupilshare.airflow.worklists_dag import build_worklists_dag

pupilshare_build_worklists = build_worklists_dag()
