"""Everything about the package is in pyproject.toml; this adds the compiled risk core when
the install asks for it (``GATEKEEPER_COMPILE=1``, build_support/core_build.py)."""

import sys
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "build_support"))

from core_build import compiling, extensions  # noqa: E402

setup(ext_modules=extensions(ROOT) if compiling() else [])
