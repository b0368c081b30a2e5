"""Post-16 providers' feed: build the post16 mart, gate it, deliver one file per provider, record every disclosure."""

from pupilshare.airflow.publish_dag import build_publish_dag

pupilshare_publish_post16 = build_publish_dag("post16")
