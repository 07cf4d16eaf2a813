"""The benchmark's processes: start them, pin them to cores, and read the CPU they used.

Linux only (``/proc``, ``sched_setaffinity``). CPU time is utime + stime from
``/proc/<pid>/stat`` (every thread of the process, in clock ticks), summed over a process and
its descendants (nginx's workers, Postgres's backends). Affinity is set on every thread of
every process of a tree, as ``taskset -a -p`` does; processes forked later (a new Postgres
backend) inherit their parent's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from tests.processes import ROOT, wait_http

TICK = os.sysconf("SC_CLK_TCK")
NGINX = Path("/usr/sbin/nginx")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces: split after its closing parenthesis
    return text.rpartition(")")[2].split()


def process_table() -> dict[int, int]:
    """Every living process and its parent."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(roots: Iterable[int], table: dict[int, int] | None = None) -> list[int]:
    """``roots`` and every living process below them (from ``table``, else read now)."""
    parents = process_table() if table is None else table
    found = [pid for pid in roots if pid in parents]
    index = 0
    while index < len(found):
        found.extend(pid for pid, parent in parents.items() if parent == found[index])
        index += 1
    return found


def cpu_seconds(roots: Iterable[int]) -> float:
    """User + system CPU time of the processes under ``roots``, in seconds."""
    ticks = 0
    for pid in descendants(roots):
        fields = _stat_fields(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return ticks / TICK


def core_busy_seconds() -> dict[int, float]:
    """Busy (non-idle, non-iowait) time of each core since boot."""
    busy: dict[int, float] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(value) for value in values]
            busy[int(name[3:])] = (sum(ticks[:8]) - ticks[3] - ticks[4]) / TICK
    return busy


def set_affinity(
    roots: Iterable[int], cores: set[int], table: dict[int, int] | None = None
) -> None:
    """Every thread of every process under ``roots`` may run on ``cores`` only."""
    for pid in descendants(roots, table):
        try:
            tasks = [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in tasks:
            with contextlib.suppress(OSError):  # gone meanwhile
                os.sched_setaffinity(tid, cores)


ALL_CORES = set(range(os.cpu_count() or 1))


@dataclass
class Service:
    """A process the benchmark started (or a server's root pid), by role."""

    name: str
    pids: list[int]
    process: asyncio.subprocess.Process | None = None
    notes: list[str] = field(default_factory=list)


def _output(log: Path | None) -> BinaryIO:
    return open(log if log is not None else os.devnull, "ab")


async def spawn(
    name: str, args: Sequence[str], env: dict[str, str] | None = None, log: Path | None = None
) -> Service:
    """``args`` as a child process, its output appended to ``log`` (else discarded)."""
    with _output(log) as output:
        process = await asyncio.create_subprocess_exec(
            *args, cwd=ROOT, env=env, stdout=output, stderr=output
        )
    return Service(name, [process.pid], process)


async def spawn_module(name: str, module: str, *args: str, log: Path | None = None) -> Service:
    return await spawn(name, [sys.executable, "-m", module, *args], log=log)


async def stop(services: Iterable[Service]) -> None:
    running = [s.process for s in services if s.process and s.process.returncode is None]
    for process in running:
        process.terminate()
    for process in running:
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


# -- nginx -------------------------------------------------------------------------------------

NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream backends {{
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location = /__nginx_ready {{ return 204; }}
        location / {{
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
    }}
}}
"""


def nginx_missing() -> str | None:
    """Why nginx cannot run here, or None."""
    if not NGINX.is_file():
        return f"{NGINX} is absent (Debian: apt-get install nginx)"
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "running as root and setpriv (util-linux) is absent to drop privileges"
    return None


def _nginx_command(directory: Path, port: int, backends: Sequence[int]) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    servers = "\n".join(f"        server 127.0.0.1:{backend};" for backend in backends)
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=directory, port=port, servers=servers))
    command = [str(NGINX), "-p", str(directory), "-e", str(directory / "error.log"),
               "-c", str(conf), "-g", "daemon off;"]  # fmt: skip
    if os.geteuid() == 0:  # nginx's workers must not run as root; neither does its master
        directory.chmod(0o777)
        for parent in directory.parents:
            if parent == Path("/tmp") or parent == Path("/"):  # noqa: S108 - a path test
                break
            parent.chmod(parent.stat().st_mode | 0o011)
        command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command]
    return command


def _read_tail(path: Path) -> str:
    return path.read_text()[-500:] if path.exists() else ""


async def start_nginx(name: str, directory: Path, port: int, backends: Sequence[int]) -> Service:
    """nginx as an unprivileged process in the foreground, proxying to ``backends`` (ports)
    with keep-alive connections; its pid file, logs and temp files in ``directory``."""
    command = _nginx_command(directory, port, backends)
    service = await spawn(name, command, log=directory / "stderr.log")
    try:
        await wait_http(f"http://127.0.0.1:{port}/__nginx_ready", within=10)
    except TimeoutError:
        await stop([service])
        log = _read_tail(directory / "error.log") + _read_tail(directory / "stderr.log")
        raise RuntimeError(f"nginx did not start: {log}") from None
    return service
