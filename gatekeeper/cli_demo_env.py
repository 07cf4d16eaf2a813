"""The demo's env file and lock: how a second terminal finds the running ``gatekeeper demo``,
and why a second demo refuses to start next to it.

The demo writes ``.gatekeeper-demo.env`` in its working directory (DATABASE_URL, REDIS_URL and
the upstream, the paper broker) and removes it when it stops. Every other command run from
that directory reads it before the settings are loaded, for the variables not already set,
and says so once on stderr; so ``gatekeeper protections show 5WT00001`` needs nothing set by
hand. The file names the demo's process: a file left by a demo that is gone is ignored.

One demo per data directory: it holds an exclusive lock on ``<data_dir>/demo.lock`` (which
names its pid) while it runs; the kernel drops the lock when the process dies, however it
dies, so a crashed demo never blocks the next one.

The values go into this process's environment (not a settings override) so that the normal
order holds: a variable set by hand wins, and the settings module stays the only reader.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import TextIO

from gatekeeper.errors import GatekeeperError

__all__ = [
    "DEMO_ENV_FILE",
    "DemoAlreadyRunning",
    "demo_lock",
    "read_demo_env",
    "remove_demo_env",
    "use_demo_env",
    "write_demo_env",
]

DEMO_ENV_FILE = Path(".gatekeeper-demo.env")
# Only these are ever taken from the file: it lives in a working directory anyone may write.
DEMO_VARIABLES = ("DATABASE_URL", "REDIS_URL", "GATEKEEPER_PROXY__UPSTREAM_URL")
_PID_LINE = re.compile(r"^# pid (\d+)$", re.MULTILINE)


def write_demo_env(values: Mapping[str, str], pid: int, path: Path = DEMO_ENV_FILE) -> Path:
    """Write ``values`` (of DEMO_VARIABLES) for the commands run next to the demo (mode 0600:
    a configured DATABASE_URL may hold a password)."""
    lines = [
        "# Written by `gatekeeper demo`; gatekeeper commands run from this directory read it",
        "# (variables already set win). Removed when the demo stops.",
        f"# pid {pid}",
        *(f"{key}={values[key]}" for key in DEMO_VARIABLES if key in values),
    ]
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")
    temporary.replace(path)
    return path


def remove_demo_env(pid: int, path: Path = DEMO_ENV_FILE) -> None:
    """Remove the file if this demo (``pid``) wrote it."""
    found = read_demo_env(path)
    if found is not None and found[0] == pid:
        path.unlink(missing_ok=True)


def read_demo_env(path: Path = DEMO_ENV_FILE) -> tuple[int, dict[str, str]] | None:
    """(the demo's pid, its variables), or None without a readable file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    pid = _PID_LINE.search(text)
    if pid is None:
        return None
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, equals, value = line.partition("=")
        if equals and key.strip() in DEMO_VARIABLES:
            values[key.strip()] = value.strip()
    return int(pid[1]), values


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's, but alive
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def use_demo_env(
    path: Path = DEMO_ENV_FILE,
    environ: MutableMapping[str, str] | None = None,
    err: TextIO | None = None,
) -> list[str]:
    """Take the running demo's variables that are not set yet; return their names."""
    environ = os.environ if environ is None else environ
    err = sys.stderr if err is None else err
    found = read_demo_env(path)
    if found is None:
        return []
    pid, values = found
    if not process_alive(pid):
        err.write(f"ignoring {path}: the demo that wrote it (pid {pid}) is not running\n")
        return []
    taken = [key for key in DEMO_VARIABLES if key in values and not environ.get(key)]
    for key in taken:
        environ[key] = values[key]
    if taken:
        err.write(f"using {', '.join(taken)} from {path} (the demo running as pid {pid})\n")
    return taken


class DemoAlreadyRunning(GatekeeperError):
    code = "demo_running"


@contextlib.contextmanager
def demo_lock(data_dir: Path) -> Iterator[None]:
    """Hold ``<data_dir>/demo.lock`` while the demo runs; DemoAlreadyRunning (one line) if
    another live demo holds it. Nothing of the other demo is touched."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "demo.lock"
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited (PEP 446)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(descriptor, 32).decode(errors="replace").strip() or "?"
        os.close(descriptor)
        raise DemoAlreadyRunning(
            f"another gatekeeper demo is running (pid {holder}, data in {data_dir}); use it"
            f" (commands run from its directory read its {DEMO_ENV_FILE}) or stop it with"
            " Ctrl-C first"
        ) from None
    try:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(descriptor)  # releases the lock
