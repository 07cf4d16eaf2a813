"""The build backend: setuptools' own, with mypy added to the build's requirements when the
install asks for the compiled core (``GATEKEEPER_COMPILE=1``; see ``core_build.py``).
setuptools documents this way of adding build requirements: a thin in-tree backend."""

from __future__ import annotations

import os
from typing import Any

from core_build import ASKING, wanted
from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 - every hook not wrapped here

_COMPILER = ["mypy>=1.10"]


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    return _with_compiler(_setuptools.get_requires_for_build_wheel, config_settings)


def get_requires_for_build_editable(config_settings: dict[str, Any] | None = None) -> list[str]:
    return _with_compiler(_setuptools.get_requires_for_build_editable, config_settings)


def _with_compiler(hook: Any, config_settings: dict[str, Any] | None) -> list[str]:
    """setuptools runs setup.py to list its requirements, before mypy is there: setup.py
    leaves the extensions out while ``ASKING`` is set (the build itself needs them)."""
    os.environ[ASKING] = "1"
    try:
        required: list[str] = hook(config_settings)
    finally:
        del os.environ[ASKING]
    return [*required, *_COMPILER] if wanted() else required


def build_editable(
    wheel_directory: str,
    config_settings: dict[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    """An editable install stays pure Python: a compiled module would shadow its ``.py``, and
    an edit to the source would silently not run."""
    if wanted():
        raise RuntimeError(
            "GATEKEEPER_COMPILE=1 compiles the core for `pip install .`, not for an editable"
            " install (a compiled module hides edits to its source); unset it for `-e`"
        )
    built: str = _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
    return built
