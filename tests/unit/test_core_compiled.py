"""The compiled risk core (``GATEKEEPER_COMPILE=1 pip install .``) decides exactly as the
pure one: the core's own tests run against a build of this checkout's core, compiled with the
options of an install (``build_support/core_build.py``).

The mutation tests of ``test_core_risk_properties.py`` are left out: they swap a function of
``gatekeeper.core.risk`` for a broken one, and a compiled module calls its own functions
directly, so the swap cannot reach them (that they fail on a broken model is shown on the
pure core). Skipped, with the reason, where nothing can compile (no C compiler or headers).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from build_support.core_build import build_copy, compiled_modules, missing_toolchain

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve()
CORE_TESTS = sorted(  # this module's own tests build, so only its one probe runs in there
    str(p.relative_to(ROOT))
    for p in (ROOT / "tests" / "unit").glob("test_core_*.py")
    if p.resolve() != HERE
)
PURE_ONLY = "not broken_model"  # the mutation tests (see the module's docstring)


def compiled_env(build: Path) -> dict[str, str]:
    """An environment that imports ``gatekeeper`` from ``build`` and the tests from ROOT
    (with ``python -P`` and pytest's append import mode, neither puts ROOT first)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(build), str(ROOT)])}


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "GK_EXPECT_COMPILED" in os.environ:  # never build again from inside the compiled run
        pytest.skip("inside the compiled run")
    reason = missing_toolchain()
    if reason is not None:
        pytest.skip(f"the compiled core cannot be built here: {reason}")
    target = tmp_path_factory.mktemp("compiled-core")
    try:
        return build_copy(ROOT, target)
    except subprocess.CalledProcessError as error:
        pytest.fail(f"the compiled core did not build:\n{error.stdout}\n{error.stderr}")


@pytest.mark.timeout(900)
def test_the_build_compiles_every_core_module_but_the_pure_ones(build: Path) -> None:
    core = build / "gatekeeper" / "core"
    for module in compiled_modules(ROOT):
        stem = Path(module).stem
        assert list(core.glob(f"{stem}.*.so")) or list(core.glob(f"{stem}.*.pyd")), stem
    probe = (
        "import gatekeeper.core as core, gatekeeper.core.order as order;"
        "print(core.COMPILED, core.__file__.endswith('.py'), order.__file__.endswith('.py'))"
    )
    shown = subprocess.run(
        [sys.executable, "-P", "-c", probe],
        env=compiled_env(build),
        cwd=build,
        check=True,
        capture_output=True,
        text=True,
    )
    # compiled, with the package and the pydantic models left pure
    assert shown.stdout.split() == ["True", "True", "True"]


@pytest.mark.timeout(900)
def test_the_core_tests_pass_on_the_compiled_core(build: Path) -> None:
    ran = subprocess.run(
        [
            sys.executable,
            "-P",
            "-m",
            "pytest",
            "--import-mode=append",
            "-q",
            "-p",
            "no:randomly",
            "-k",
            PURE_ONLY,
            "-o",
            "addopts=--strict-markers -p no:cacheprovider -m 'not bench and not soak'",
            "-W",
            "error",
            *CORE_TESTS,
            str(HERE.relative_to(ROOT)) + "::test_compiled",
        ],
        env={**compiled_env(build), "GK_EXPECT_COMPILED": "1"},
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stdout[-6000:] + ran.stderr[-2000:]
    assert " passed" in ran.stdout
    assert " failed" not in ran.stdout


def test_compiled() -> None:
    """Run inside the compiled test run: the core it imported is the compiled one (else the
    run above proves nothing). Outside it, the pure core is the one under test."""
    import gatekeeper.core

    expected = os.environ.get("GK_EXPECT_COMPILED") == "1"
    assert gatekeeper.core.COMPILED is expected
