"""Youth Support Services feed: build the yss mart, gate it, deliver it, record every disclosure."""

from pupilshare.airflow.publish_dag import build_publish_dag

pupilshare_publish_yss = build_publish_dag("yss")
