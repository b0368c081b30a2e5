"""The folder target: the outbox (``PUPILSHARE_DATA_DIR/outbox``), or a share mounted there."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import BinaryIO

from pupilshare.delivery import Folder, TargetSession


class FolderSession(TargetSession):
    """Writes into ``base`` (created if missing): files are flushed to disk before they are renamed into place."""

    remedy = "free space (or make the target folder writable again) and rerun the deliver task"

    def __init__(self, base: Path) -> None:
        super().__init__()
        self._base = base

    def _path(self, folder: Folder, name: str | None = None) -> str:
        path = self._base.joinpath(*folder)
        return str(path / name if name else path)

    def location(self, folder: Folder, name: str | None = None) -> str:
        return self._path(folder, name)

    def _make_folder(self, path: str) -> bool:
        self._base.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(path)
        except FileExistsError:
            if os.path.isdir(path):
                return False
            raise NotADirectoryError(errno.ENOTDIR, "a file is where the folder must be", path) from None
        return True

    def _open_for_write(self, path: str) -> BinaryIO:
        return open(path, "wb")  # noqa: SIM115 - the caller closes it

    def _finish(self, path: str, handle: BinaryIO, size: int, sha256: str) -> None:
        handle.flush()
        os.fsync(handle.fileno())  # a full disk fails here, before anything is renamed into place

    def _rename(self, source: str, final: str) -> None:
        os.replace(source, final)

    def _remove(self, path: str) -> None:
        os.unlink(path)

    def _remove_folder(self, path: str) -> None:
        os.rmdir(path)
