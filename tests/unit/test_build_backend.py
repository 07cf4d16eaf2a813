"""The in-tree build backend (``build_support/backend.py``): mypy joins the build's
requirements only when the compiled core is asked for, setup.py builds no extension while
setuptools merely lists requirements, and an editable install refuses to compile."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

from build_support import core_build

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The backend as pip loads it: ``build_support/`` first on the path (pyproject.toml's
    backend-path), its modules imported by their bare names."""
    monkeypatch.syspath_prepend(str(ROOT / "build_support"))
    module = importlib.import_module("backend")
    for name in ("backend", "core_build"):  # gone again after the test
        monkeypatch.setitem(sys.modules, name, sys.modules[name])
    return module


def listed_while(backend: ModuleType, seen: list[bool]) -> list[str]:
    """The requirements the backend adds to a setuptools hook's, noting whether setup.py
    would have compiled while the hook ran."""

    def hook(config_settings: object) -> list[str]:
        seen.append(core_build.compiling())
        return ["wheel"]

    listed: list[str] = backend._with_compiler(hook, None)
    return listed


def test_a_plain_install_needs_no_compiler(
    backend: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(core_build.ENV, raising=False)
    seen: list[bool] = []
    assert listed_while(backend, seen) == ["wheel"]
    assert seen == [False]
    assert not core_build.compiling()


def test_a_compiled_install_brings_mypy_and_compiles_only_in_the_build(
    backend: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(core_build.ENV, "1")
    seen: list[bool] = []
    listed = listed_while(backend, seen)
    assert listed[0] == "wheel"
    assert any(r.startswith("mypy") for r in listed[1:]), listed
    assert seen == [False], "setup.py must not compile before mypy is installed"
    assert core_build.compiling(), "the build itself compiles"


@pytest.mark.parametrize("value", ["0", "", "yes"])
def test_only_1_asks_for_the_compiled_core(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(core_build.ENV, value)
    assert not core_build.wanted()


def test_an_editable_install_refuses_to_compile(
    backend: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(core_build.ENV, "1")
    with pytest.raises(RuntimeError, match="not for an editable install"):
        backend.build_editable(str(tmp_path))
    assert list(tmp_path.iterdir()) == [], "nothing built"


def test_the_compiled_modules_leave_the_package_and_the_models_pure() -> None:
    modules = core_build.compiled_modules(ROOT)
    assert "gatekeeper/core/risk.py" in modules
    assert "gatekeeper/core/evaluate.py" in modules
    names = {Path(m).name for m in modules}
    assert names.isdisjoint(core_build.PURE)
    assert len(modules) == len(list((ROOT / "gatekeeper" / "core").glob("*.py"))) - len(
        core_build.PURE
    )
