"""Session set-up shared by every test: a real PostgreSQL and an isolated Airflow/data environment.

The server is ``PUPILSHARE_TEST_ADMIN_URL`` if set, else the machine's PostgreSQL on 127.0.0.1:5432 if it answers,
else an embedded pgserver cluster started in a temporary folder. Each session gets its own databases, dropped at the
end. Airflow's configuration is exported in ``pytest_configure``, before any test module imports airflow.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

_STATE: dict[str, object] = {}


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _admin_url(workdir: Path) -> str:
    configured = os.environ.get("PUPILSHARE_TEST_ADMIN_URL")
    if configured:
        return configured
    machine = "postgresql://postgres@127.0.0.1:5432/postgres"
    if _reachable(machine):
        return machine
    import pgserver

    server = pgserver.get_server(workdir / "pgdata", cleanup_mode="stop")
    _STATE["pgserver"] = server
    return server.get_uri("postgres")


def pytest_configure(config: pytest.Config) -> None:
    from pupilshare.db import DatabaseEndpoints, to_sqlalchemy_url, with_database
    from pupilshare.runtime import export_runtime_environment
    from pupilshare.settings import Settings

    workdir = Path(tempfile.mkdtemp(prefix="pupilshare-tests-"))
    admin = _admin_url(workdir)
    name = f"pupilshare_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        for database in (name, f"{name}_airflow"):
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
    data_url = with_database(admin, name)
    airflow_url = to_sqlalchemy_url(with_database(admin, f"{name}_airflow"))
    os.environ["PUPILSHARE_DATABASE_URL"] = data_url
    os.environ["PUPILSHARE_AIRFLOW_DATABASE_URL"] = airflow_url
    os.environ["PUPILSHARE_DATA_DIR"] = str(workdir / "data")
    settings = Settings()
    export_runtime_environment(settings, DatabaseEndpoints(data_url, airflow_url, embedded=False))
    _STATE.update(workdir=workdir, admin=admin, databases=(name, f"{name}_airflow"))


def pytest_unconfigure(config: pytest.Config) -> None:
    admin = _STATE.get("admin")
    if admin:
        try:
            from airflow import settings as airflow_settings

            airflow_settings.dispose_orm()
        except Exception:  # noqa: BLE001 - airflow may never have been imported
            pass
        with psycopg.connect(str(admin), autocommit=True) as conn:
            for database in _STATE.get("databases", ()):
                conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database)))
    server = _STATE.get("pgserver")
    if server is not None:
        server.cleanup()
    workdir = _STATE.get("workdir")
    if workdir:
        shutil.rmtree(str(workdir), ignore_errors=True)


@pytest.fixture(scope="session")
def admin_url() -> str:
    """libpq URL of the test server's ``postgres`` database (may create and drop databases)."""
    return str(_STATE["admin"])


@pytest.fixture(scope="session")
def data_url() -> str:
    """libpq URL of this session's data database."""
    return os.environ["PUPILSHARE_DATABASE_URL"]


@pytest.fixture
def scratch_db(admin_url: str):
    """A fresh empty database for one test; yields its URL and drops it afterwards."""
    from pupilshare.db import with_database

    name = f"pupilshare_scratch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


# --- a real SFTP server on loopback -----------------------------------------------------------------------------------


class SftpServer:
    """A real SFTP server (asyncssh) on 127.0.0.1 and a free port, chrooted to ``root``, with a generated host key and
    client key, run on its own event loop in a thread. ``stop()`` and ``start()`` make an outage on the same port;
    ``refuse_writes`` makes the server refuse to open matching files (a full quota), and ``drop_on_write`` makes it
    drop every connection when one is opened (the server dies mid-delivery), ``corrupt_writes`` makes it store other
    bytes than it was sent for matching files (a faulty disk or proxy)."""

    def __init__(self, root: Path, keys: Path) -> None:
        import asyncio
        import socket
        import threading

        import asyncssh

        self.root, self.keys = root, keys
        root.mkdir(parents=True, exist_ok=True)
        keys.mkdir(parents=True, exist_ok=True)
        self._host_key = asyncssh.generate_private_key("ssh-ed25519")
        client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key_file = keys / "client_ed25519"
        self.client_key_file.write_bytes(client_key.export_private_key())
        self.client_key_file.chmod(0o600)
        self._authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())
        self.host_key = self._host_key.export_public_key().decode().split()[:2]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.refuse_writes: str | None = None
        self.drop_on_write: str | None = None
        self.corrupt_writes: str | None = None
        self.opened: list[str] = []
        self.renamed: list[str] = []  # final names, in the order files were renamed into place
        self._connections: list = []
        self._listener = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sftp-server", daemon=True)
        self._thread.start()

    def _run(self, coroutine):
        import asyncio

        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    def _sftp_factory(self, channel):
        import asyncssh

        server = self

        class _Server(asyncssh.SFTPServer):
            def open(self, path: bytes, pflags: int, attrs):
                name = path.decode()
                server.opened.append(name)
                if pflags & asyncssh.FXF_WRITE and server.refuse_writes and server.refuse_writes in name:
                    raise asyncssh.SFTPFailure("disk quota exceeded")
                if pflags & asyncssh.FXF_WRITE and server.drop_on_write and server.drop_on_write in name:
                    for connection in server._connections:
                        connection.abort()
                    raise asyncssh.SFTPConnectionLost("the server went away")
                return super().open(path, pflags, attrs)

            def posix_rename(self, oldpath: bytes, newpath: bytes):
                server.renamed.append(newpath.decode())
                return super().posix_rename(oldpath, newpath)

            def write(self, file_obj, offset: int, data: bytes):
                if server.corrupt_writes and server.corrupt_writes in os.fsdecode(file_obj.name) and data:
                    data = data[:-1] + bytes([data[-1] ^ 0xFF])  # same size, other bytes
                return super().write(file_obj, offset, data)

        return _Server(channel, chroot=str(self.root).encode())

    def start(self) -> None:
        import asyncssh

        async def listen():
            return await asyncssh.listen(
                "127.0.0.1",
                self.port,
                server_host_keys=[self._host_key],
                authorized_client_keys=self._authorized,
                sftp_factory=self._sftp_factory,
                allow_scp=False,
                reuse_address=True,
                acceptor=self._connections.append,
            )

        self._listener = self._run(listen())

    def stop(self) -> None:
        """Stop listening and drop every open connection: the server is down."""
        if self._listener is None:
            return

        async def close(listener):
            listener.close()
            await listener.wait_closed()
            for connection in self._connections:
                connection.abort()
            self._connections.clear()

        self._run(close(self._listener))
        self._listener = None

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def connection(self, **extra: object) -> str:
        """The Airflow connection (JSON, as ``AIRFLOW_CONN_<ID>`` holds it) of this server for user ``pupilshare``: the
        client key itself and the pinned host key, as docs/operations.md configures production."""
        import json

        host_key = " ".join(self.host_key)
        return json.dumps(
            {
                "conn_type": "sftp",
                "host": "127.0.0.1",
                "port": self.port,
                "login": "pupilshare",
                "extra": {"private_key": self.client_key_file.read_text(), "host_key": host_key, **extra},
            }
        )

    def files(self) -> dict[str, bytes]:
        """Every file on the server, by path below its root (hidden temporary files included)."""
        return {
            str(path.relative_to(self.root)): path.read_bytes()
            for path in sorted(self.root.rglob("*"))
            if path.is_file()
        }


@pytest.fixture
def sftp_server(tmp_path: Path):
    """A running :class:`SftpServer` chrooted to ``tmp_path/sftp``, stopped afterwards."""
    server = SftpServer(tmp_path / "sftp", tmp_path / "sftp_keys")
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def stage_synthetic_feed():
    """Return ``stage(settings, rows, feed_date, recipient_id="yss", padding=0) -> staging folder``: a staged feed of
    synthetic rows written by the publish step's own staging, with a passed gate recorded (the gate is tested
    elsewhere; these tests are about delivery). A routed recipient's rows alternate between routes ``10000000`` and
    ``10000001``. ``padding`` adds a space and that many ``x`` to every other value, for a feed of a wanted size."""
    import datetime as dt
    import json

    from pupilshare.ledger import ensure_ledger_schema, record_gate_result
    from pupilshare.policy import load_policy
    from pupilshare.publish import _stage

    def stage(settings, rows: int, feed_date: dt.date, recipient_id: str = "yss", padding: int = 0) -> str:
        recipient = load_policy().recipient(recipient_id)
        columns = list(recipient.mart_columns)

        def value(name: str, index: int) -> str:
            if name == recipient.key_column:
                return f"A{index:012d}"
            if name == recipient.route_column:
                return f"1000000{index % 2}"
            return f"{name} {index}" + (" " + "x" * padding if padding else "")

        data = [tuple(value(name, index) for name in columns) for index in range(rows)]
        run_id = f"delivery__{uuid.uuid4().hex[:8]}"
        staging = _stage(recipient, columns, data, feed_date=feed_date, run_id=run_id, settings=settings)
        gate_id = f"gate_{run_id}"
        with psycopg.connect(settings.database_url) as conn:
            ensure_ledger_schema(conn)
            record_gate_result(
                conn,
                gate_result_id=gate_id,
                recipient_id=recipient_id,
                suite_name=f"{recipient_id}__feed",
                feed_date=feed_date,
                run_id=run_id,
                success=True,
                evaluated_rows=rows,
                failures=[],
                data_docs_index=None,
            )
        gate = {"result_id": gate_id, "success": True, "policy_version": load_policy().version}
        (staging / "gate.json").write_text(json.dumps(gate), encoding="utf-8")
        return str(staging)

    return stage


@pytest.fixture
def delivery_policy(monkeypatch: pytest.MonkeyPatch):
    """Return ``use(recipient_id, **delivery) -> Policy``: deliveries in this test run under the shipped policy with
    ``recipient_id``'s ``delivery`` section changed, validated as the policy file would be (the file is untouched).
    Calls accumulate, so two recipients can both be changed."""
    from pupilshare import publish, retraction
    from pupilshare.policy import Delivery, load_policy

    current = {"policy": load_policy()}

    def use(recipient_id: str, **delivery: object):
        policy = current["policy"]
        recipient = policy.recipient(recipient_id)
        changed = Delivery.model_validate({**recipient.delivery.model_dump(exclude_none=True), **delivery})
        recipients = {**policy.recipients, recipient_id: recipient.model_copy(update={"delivery": changed})}
        current["policy"] = policy.model_copy(update={"recipients": recipients})
        for module in (publish, retraction):  # feeds and retraction notices go by the same delivery target
            monkeypatch.setattr(module, "load_policy", lambda: current["policy"])
        return current["policy"]

    return use
