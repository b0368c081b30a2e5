"""Airflow Assets that connect the DAGs (data-aware scheduling)."""

from airflow.sdk import Asset

#: Updated whenever a census extract has been loaded into ``raw``.
RAW_CENSUS = Asset(name="pupilshare_raw_census", uri="postgres://pupilshare/raw/census")


def feed_asset(recipient_id: str) -> Asset:
    """Updated whenever a recipient's feed has been delivered."""
    return Asset(name=f"pupilshare_feed_{recipient_id}", uri=f"file://pupilshare/outbox/{recipient_id}")
