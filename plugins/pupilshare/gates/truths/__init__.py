"""Recipient-specific gate truth, worked out from the raw returns independently of the dbt models.

One module per recipient whose truth goes beyond :mod:`pupilshare.gates.truth` (the YSS truth): each exposes a
``load_<recipient>_truth(conn, feed_date, *, persistence)`` returning a truth frame for
:func:`pupilshare.gates.feed.build_validation_frame`.
"""
