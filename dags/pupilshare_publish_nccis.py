"""NCCIS feed to the DfE (destinations, September Guarantee): build the nccis mart, gate it, deliver it monthly,
record every disclosure."""

from pupilshare.airflow.publish_dag import build_publish_dag

pupilshare_publish_nccis = build_publish_dag("nccis")
