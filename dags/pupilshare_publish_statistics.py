"""Published statistics: build the stats models, suppress and audit them, publish EES open data files, record them."""

from pupilshare.airflow.stats_dag import build_statistics_dag

pupilshare_publish_statistics = build_statistics_dag()
