"""The thin corner of pupilshare that knows Airflow: assets, DAG factories, callbacks, the in-process runner and the
SFTP delivery target (through the Airflow SFTP provider's hook).

Nothing outside this package imports airflow; the domain code runs and tests without it.
"""
