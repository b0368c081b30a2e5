"""Delivery targets: where a gated feed is written, chosen by the recipient policy's ``delivery.target``.

A target is opened once per delivery attempt as a :class:`TargetSession`. Each file goes up under a hidden temporary
name (``.<name>.partial``) beside its final name and is flushed (folder) or checked against the local size and SHA-256
(SFTP); :meth:`TargetSession.publish` then renames them into place in the order they were put, so a feed is in place
before the manifest that announces it. :meth:`TargetSession.rollback` removes exactly what this attempt wrote: its
temporary files, the files it renamed into place and the folders it created, never an earlier delivery's files.

Two targets: ``folder`` (:class:`pupilshare.delivery.folder.FolderSession`, the outbox) and ``sftp``
(:mod:`pupilshare.airflow.sftp`, the recipient's server through the Airflow SFTP provider; the only part of delivery
that imports Airflow). The remote layout mirrors the outbox: ``<base>/<recipient>/[<route>/]<feed date>/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from pupilshare.policy import RecipientPolicy
from pupilshare.settings import Settings

#: A folder below the target's base, as its parts: ``("yss", "2026-11-30")``.
Folder = Sequence[str]
_CHUNK = 1 << 20


class DeliveryTargetError(OSError):
    """A delivery target could not be reached or written; the message names the server, the path and the cause."""


class TargetSession(ABC):
    """One delivery attempt's writes to one target; see the module docstring for the protocol."""

    #: What an operator does when a delivery to this target failed (the end of the error message).
    remedy: str = ""

    def __init__(self) -> None:
        self._pending: list[tuple[str, str]] = []  # (temporary, final) in the order put
        self._placed: list[str] = []  # final names this attempt renamed into place
        self._created: list[str] = []  # folders this attempt created, parents first

    # -- the primitives each target implements (paths are the target's own strings) ------------------------------

    @abstractmethod
    def _path(self, folder: Folder, name: str | None = None) -> str:
        """The target's path of ``folder`` (and ``name`` in it)."""

    @abstractmethod
    def location(self, folder: Folder, name: str | None = None) -> str:
        """Where ``folder`` (or the file ``name`` in it) is, for the ledger, manifests and messages."""

    @abstractmethod
    def _make_folder(self, path: str) -> bool:
        """Create the folder ``path`` if missing: True if created, False if it was a folder; raise if not a folder."""

    @abstractmethod
    def _open_for_write(self, path: str) -> BinaryIO: ...

    @abstractmethod
    def _finish(self, path: str, handle: BinaryIO, size: int, sha256: str) -> None:
        """Make the just-written ``path`` durable and check it holds ``size`` bytes hashing to ``sha256``."""

    @abstractmethod
    def _rename(self, source: str, final: str) -> None:
        """Rename ``source`` to ``final`` atomically, replacing ``final`` if it exists."""

    @abstractmethod
    def _remove(self, path: str) -> None:
        """Remove a file; a missing file raises FileNotFoundError."""

    @abstractmethod
    def _remove_folder(self, path: str) -> None: ...

    # -- the protocol ---------------------------------------------------------------------------------------------

    def connect(self) -> None:  # noqa: B027 - a folder has nothing to connect to
        """Reach the target (an SFTP server: log in); called once, before the first :meth:`put`."""

    def put(self, folder: Folder, name: str, source: Path | bytes) -> None:
        """Write ``source`` (a local file, or bytes) as ``folder/.<name>.partial``, to be renamed by :meth:`publish`."""
        self._ensure_folder(folder)
        temporary, final = self._path(folder, f".{name}.partial"), self._path(folder, name)
        handle = self._open_for_write(temporary)
        self._pending.append((temporary, final))  # from here on the file is this attempt's to remove
        digest, size = hashlib.sha256(), 0
        with handle, _reader(source) as reader:
            while chunk := reader.read(_CHUNK):
                handle.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            self._finish(temporary, handle, size, digest.hexdigest())

    def publish(self) -> None:
        """Rename every file put into place, in the order put (a feed before its manifest)."""
        for temporary, final in self._pending:
            self._rename(temporary, final)
            self._placed.append(final)

    def rollback(self) -> list[str]:
        """Remove what this attempt wrote; return what could not be removed (each with its reason)."""
        left: list[str] = []
        placed = set(self._placed)
        for path in [*(temp for temp, final in self._pending if final not in placed), *self._placed]:
            try:
                self._remove(path)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                pass  # never written, or a folder in the way that this attempt did not make
            except Exception as error:  # noqa: BLE001 - cleanup reports, it never hides the delivery's own error
                left.append(f"{path} ({type(error).__name__}: {error})")
        for folder in reversed(self._created):
            try:
                self._remove_folder(folder)
            except Exception as error:  # noqa: BLE001
                left.append(f"{folder}/ ({type(error).__name__}: {error})")
        self._pending, self._placed, self._created = [], [], []
        return left

    def _ensure_folder(self, folder: Folder) -> None:
        for depth in range(1, len(folder) + 1):
            path = self._path(folder[:depth])
            if path not in self._created and self._make_folder(path):
                self._created.append(path)


@contextlib.contextmanager
def _reader(source: Path | bytes) -> Iterator[BinaryIO]:
    if isinstance(source, bytes):
        yield io.BytesIO(source)
    else:
        with source.open("rb") as handle:
            yield handle


@contextlib.contextmanager
def open_target(recipient: RecipientPolicy, settings: Settings) -> Iterator[TargetSession]:
    """Open the recipient's delivery target for one attempt (call :meth:`TargetSession.connect` before writing)."""
    if recipient.delivery.target == "sftp":
        from pupilshare.airflow.sftp import open_sftp_session

        with open_sftp_session(recipient.delivery.sftp_target(recipient.recipient_id), settings) as session:
            yield session
    else:
        from pupilshare.delivery.folder import FolderSession

        yield FolderSession(settings.outbox_dir)
