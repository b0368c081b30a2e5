"""Sure Start Children's Centres' feed: build the sure_start mart, gate it, deliver one file per centre, record
every disclosure."""

from pupilshare.airflow.publish_dag import build_publish_dag

pupilshare_publish_sure_start = build_publish_dag("sure_start")
