"""The SFTP delivery target, through the Airflow SFTP provider (``apache-airflow-providers-sftp``).

The server, user, key and the server's host key come from an Airflow connection the environment supplies
(``AIRFLOW_CONN_PUPILSHARE_SFTP_<RECIPIENT>``); the folder on the server from the policy (``delivery.sftp``). Each
file is uploaded under a hidden temporary name, its size and SHA-256 checked by reading it back, and only then renamed
into place (``posix-rename@openssh.com``, which replaces atomically; plain rename where the server lacks it). Every
failure is a :class:`~pupilshare.delivery.DeliveryTargetError` naming the server, the path and the cause.
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import stat
from collections.abc import Iterator
from typing import Any, BinaryIO

from pupilshare.delivery import DeliveryTargetError, Folder, TargetSession
from pupilshare.policy import SftpTarget
from pupilshare.settings import Settings

_CHUNK = 1 << 20


def _cause(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class SftpSession(TargetSession):
    """Writes below ``base`` on an open SFTP connection (a paramiko ``SFTPClient`` from the provider's hook)."""

    remedy = (
        "check the server answers and the connection (AIRFLOW_CONN_...) and base path are right, then rerun the "
        "deliver task: the staged feed is kept and is delivered once"
    )

    def __init__(self, hook: Any, stack: contextlib.ExitStack, base: str) -> None:
        super().__init__()
        self._hook, self._stack = hook, stack
        self._sftp: Any = None
        self.server = f"{hook.username}@{hook.remote_host}:{hook.port}"
        self._base = base

    def connect(self) -> None:
        """Log in (the connection is closed when the session ends) and check the base path is a folder."""
        try:
            self._sftp = self._stack.enter_context(self._hook.get_managed_conn())
        except Exception as error:
            raise DeliveryTargetError(f"SFTP {self.server}: could not connect: {_cause(error)}") from error
        self.check_base()

    def _path(self, folder: Folder, name: str | None = None) -> str:
        return posixpath.normpath(posixpath.join(self._base, *folder, *([name] if name else [])))

    def location(self, folder: Folder, name: str | None = None) -> str:
        path = self._path(folder, name)
        return f"sftp://{self.server}{path if path.startswith('/') else '/~/' + path}"

    def check_base(self) -> None:
        """The base path must exist as a folder (it is agreed with the recipient, not made by a delivery)."""
        with self._failing("find the base path", self._base):
            if not stat.S_ISDIR(self._sftp.stat(self._base).st_mode or 0):
                raise NotADirectoryError(f"{self._base} is not a folder")

    def put(self, folder: Folder, name: str, source) -> None:
        with self._failing(f"upload {name} to", self._path(folder)):
            super().put(folder, name, source)

    def publish(self) -> None:
        with self._failing("rename the uploaded files into place in", self._path([])):
            super().publish()

    @contextlib.contextmanager
    def _failing(self, doing: str, path: str) -> Iterator[None]:
        try:
            yield
        except DeliveryTargetError:
            raise
        except Exception as error:
            raise DeliveryTargetError(f"SFTP {self.server}: could not {doing} {path}: {_cause(error)}") from error

    def _make_folder(self, path: str) -> bool:
        try:
            mode = self._sftp.stat(path).st_mode or 0
        except FileNotFoundError:
            self._sftp.mkdir(path)
            return True
        if not stat.S_ISDIR(mode):
            raise NotADirectoryError(f"{path} is a file where the folder must be")
        return False

    def _open_for_write(self, path: str) -> BinaryIO:
        handle = self._sftp.open(path, "wb")
        handle.set_pipelined(True)
        return handle

    def _finish(self, path: str, handle: BinaryIO, size: int, sha256: str) -> None:
        handle.close()  # waits for the server to acknowledge every write
        uploaded = self._sftp.stat(path).st_size
        if uploaded != size:
            raise DeliveryTargetError(f"SFTP {self.server}: {path} holds {uploaded} bytes after upload, not {size}")
        digest = hashlib.sha256()
        with self._sftp.open(path, "rb") as remote:
            remote.prefetch(size)
            while chunk := remote.read(_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise DeliveryTargetError(f"SFTP {self.server}: {path} read back does not match the SHA-256 uploaded")

    def _rename(self, source: str, final: str) -> None:
        try:
            self._sftp.posix_rename(source, final)
        except OSError:
            if self._exists(final):
                raise
            self._sftp.rename(source, final)  # a server without posix-rename: the final name is free

    def _exists(self, path: str) -> bool:
        try:
            self._sftp.stat(path)
        except FileNotFoundError:
            return False
        return True

    def _remove(self, path: str) -> None:
        self._sftp.remove(path)

    def _remove_folder(self, path: str) -> None:
        self._sftp.rmdir(path)


@contextlib.contextmanager
def open_sftp_session(target: SftpTarget, settings: Settings) -> Iterator[SftpSession]:
    """Yield a session writing below ``target.base_path`` on the server of ``target.connection_id`` (it connects in
    :meth:`SftpSession.connect`, and the connection is closed on leaving)."""
    from airflow.providers.sftp.hooks.sftp import SFTPHook

    conn_id = str(target.connection_id)
    try:
        hook = SFTPHook(
            ssh_conn_id=conn_id,
            conn_timeout=settings.sftp_connect_timeout_seconds,
            conn_retry_attempts=settings.sftp_connect_attempts,
        )
    except Exception as error:
        raise DeliveryTargetError(
            f"could not read the Airflow connection {conn_id} ({_cause(error)}): set AIRFLOW_CONN_{conn_id.upper()} "
            "in the environment of every worker (docs/operations.md, Delivering by SFTP)"
        ) from error
    with contextlib.ExitStack() as stack:
        yield SftpSession(hook, stack, target.base_path)
