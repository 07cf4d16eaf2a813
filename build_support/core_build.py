"""The risk core compiled with mypyc: which modules, with which options, and a build of a
copy of the package for the tests and the benchmark.

``GATEKEEPER_COMPILE=1 pip install .`` compiles :data:`gatekeeper.core`'s modules into C
extensions (``setup.py``; ``backend.py`` adds mypy to the build's requirements). Without the
variable, the install is pure Python, as a development checkout should be. Kept free of
imports from ``gatekeeper``: ``setup.py`` reads it before anything is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ENV = "GATEKEEPER_COMPILE"
ASKING = "GATEKEEPER_BUILD_REQUIRES"  # set by backend.py while setuptools lists requirements

# Left pure: the package itself (it says whether the rest is compiled), and the modules of
# pydantic models (mypyc compiles no pydantic class; they gain nothing from it).
PURE = frozenset({"__init__.py", "order.py", "parse.py"})

# mypy's options for the compile: not the project's own (``[tool.mypy]`` loads pydantic's
# plugin, absent from an isolated build); what the core imports from outside is typed Any.
MYPY_OPTIONS = ("--config-file=", "--ignore-missing-imports", "--python-version=3.11")


def wanted() -> bool:
    """Whether this install asks for the compiled core."""
    return os.environ.get(ENV, "") == "1"


def compiling() -> bool:
    """Whether setup.py must build the compiled core now (asked for, and not merely listing
    the build's requirements, which bring mypy)."""
    return wanted() and not os.environ.get(ASKING)


def compiled_modules(root: Path) -> list[str]:
    """The core's modules to compile, as paths relative to the project's ``root``."""
    core = root / "gatekeeper" / "core"
    return sorted(
        str(path.relative_to(root)) for path in core.glob("*.py") if path.name not in PURE
    )


def extensions(root: Path) -> list[object]:
    """The setuptools extensions of the compiled core (mypyc must be importable)."""
    from mypyc.build import mypycify

    previous = Path.cwd()
    os.chdir(root)  # mypycify takes paths relative to the working directory
    try:
        return list(mypycify([*MYPY_OPTIONS, *compiled_modules(root)], opt_level="3"))
    finally:
        os.chdir(previous)


def missing_toolchain() -> str | None:
    """Why a compile cannot run here (no C compiler, no Python headers, no mypyc), or None."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        return "no Python headers (Python.h)"
    try:
        import mypyc  # noqa: F401
    except ImportError:
        return "mypyc is not installed (it comes with mypy)"
    return None


_BUILD = """
import sys
from pathlib import Path
from setuptools import setup
sys.path.insert(0, {support!r})
from core_build import extensions
setup(name="gatekeeper-core-build", ext_modules=extensions(Path.cwd()),
      script_args=["build_ext", "--inplace"])
"""


def build_copy(source: Path, target: Path) -> Path:
    """Copy the ``gatekeeper`` package of ``source`` into ``target`` and compile its core
    there, with the options of an install (``GATEKEEPER_COMPILE=1``). Returns ``target``, to
    put first on ``sys.path``. Raises CalledProcessError (with the compiler's output)."""
    shutil.copytree(
        source / "gatekeeper",
        target / "gatekeeper",
        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"),
    )
    script = _BUILD.format(support=str(Path(__file__).resolve().parent))
    subprocess.run(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", script],
        cwd=target,
        check=True,
        capture_output=True,
        text=True,
    )
    return target
