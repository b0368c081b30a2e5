"""Health (NCMP) feed: build the health mart, gate it (every BMI category recomputed with rcpchgrowth), deliver the
feedback-to-parents file, record every disclosure."""

from pupilshare.airflow.publish_dag import build_publish_dag

pupilshare_publish_health = build_publish_dag("health")
