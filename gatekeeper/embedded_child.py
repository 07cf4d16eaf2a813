"""Process supervision shared by the embedded servers (gatekeeper.embedded): spawn, readiness,
signals, clean-up; every server started is stopped at interpreter exit, so no orphan is left
behind."""

from __future__ import annotations

import atexit
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from gatekeeper.embedded_os import (
    EmbeddedServerError,
    free_port,
    is_alive,
    log_tail,
    on_spawner_thread,
    parent_death_signal,
    send_signal,
)

# Every started server, so that interpreter exit can stop what callers forgot to stop.
_running: set[ChildServer] = set()
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


class ChildServer:
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
                send_signal(process.pid, self.shutdown_signal)
                if self._paused:
                    for pid in self._server_pids():
                        send_signal(pid, signal.SIGCONT)
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
            send_signal(process.pid, signal.SIGSTOP)  # so that it forks nothing we would miss
            pids = self._server_pids()
            for pid in pids:
                send_signal(pid, signal.SIGKILL)
            process.wait(10.0)
            deadline = time.monotonic() + 10.0
            while any(is_alive(pid) for pid in pids[1:]) and time.monotonic() < deadline:
                time.sleep(0.01)
            self._forget()

    def pause(self) -> None:
        """SIGSTOP the server and its helpers: connections stay open, nothing answers."""
        with self._lock:
            if not self.running:
                raise EmbeddedServerError(f"{self.name} is not running")
            for pid in self._server_pids():  # main process first: it forks no more helpers
                send_signal(pid, signal.SIGSTOP)
            self._paused = True

    def resume(self) -> None:
        """SIGCONT what ``pause()`` stopped."""
        with self._lock:
            for pid in reversed(self._server_pids()):
                send_signal(pid, signal.SIGCONT)
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
            self._process = on_spawner_thread(
                lambda: subprocess.Popen(  # noqa: S603 - our own binary, argv list
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.directory,
                    start_new_session=True,  # a Ctrl-C in the terminal is ours to handle
                    preexec_fn=parent_death_signal(self.shutdown_signal),
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
                    f"(log {self.log_path}):\n{log_tail(self.log_path)}"
                )
            if self._is_ready():
                return
            if time.monotonic() > deadline:
                self.kill()
                raise EmbeddedServerError(
                    f"{self.name} did not accept connections within {self.startup_timeout:g}s "
                    f"(log {self.log_path}):\n{log_tail(self.log_path)}"
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
