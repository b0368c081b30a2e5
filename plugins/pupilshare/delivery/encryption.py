"""age encryption of feed files (https://age-encryption.org, through ``pyrage``, the Python binding of rage).

A recipient whose policy has ``delivery.encryption`` receives ``<feed>.age``, encrypted to its X25519 public key(s);
the manifest stays plain and records the SHA-256 of both the plaintext feed and the ciphertext.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyrage

#: Appended to an encrypted file's name (as the age tool does).
AGE_SUFFIX = ".age"


def encrypt_file(source: Path, destination: Path, public_keys: Sequence[str]) -> None:
    """Encrypt ``source`` into ``destination`` for every holder of an identity matching one of ``public_keys``."""
    recipients = [pyrage.x25519.Recipient.from_str(key) for key in public_keys]
    pyrage.encrypt_file(str(source), str(destination), recipients)
