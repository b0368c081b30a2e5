"""The thin corner of pupilshare that knows Airflow: assets, DAG factories, callbacks and the in-process runner.

Nothing outside this package imports airflow; the domain code runs and tests without it.
"""
