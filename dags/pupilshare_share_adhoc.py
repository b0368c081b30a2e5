"""Ad-hoc sharing with another agency under a duty to share: triggered with the request as params (agency, legal
basis, reference, pupils, fields, justification, requested by); records it, gates, delivers and records."""

from pupilshare.airflow.adhoc_dag import build_adhoc_dag

pupilshare_share_adhoc = build_adhoc_dag()
