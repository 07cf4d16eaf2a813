"""No code compares a token or secret with ``==``/``!=`` (issue 8): an ordinary comparison
returns at the first differing byte, and its timing tells an attacker how much of a guess was
right. Secrets are compared with ``hmac.compare_digest`` (``secrets.compare_digest``).

Every module under ``gatekeeper/`` is parsed with ``ast``; a comparison is flagged when a name
on either side (a variable, an attribute, a subscript's string key, a ``.get("...")`` key)
contains one of the words below. A justified exception goes into ``ALLOWED`` with its reason.
Ruff's ``S`` (bandit) rules stay on, which catch hard-coded secrets and the like.
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "gatekeeper"
SECRET_WORDS = re.compile(r"token|secret|passw(or)?d|authorization|digest|credential", re.I)

# (path relative to the repository, the comparison as ast.unparse writes it) -> why it is fine.
ALLOWED: dict[tuple[str, str], str] = {
    ("gatekeeper/console/access.py", "issued.id == session.token_id"): "row ids, not tokens",
}


def _names(node: ast.AST) -> Iterator[str]:
    """The names an operand is made of: variables, attributes, string keys it looks up."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            yield sub.id
        elif isinstance(sub, ast.Attribute):
            yield sub.attr
        elif isinstance(sub, ast.Subscript) and isinstance(sub.slice, ast.Constant):
            yield str(sub.slice.value)
        elif (
            isinstance(sub, ast.Call)
            and isinstance(sub.func, ast.Attribute)
            and sub.func.attr in ("get", "getone", "getall")
            and sub.args
            and isinstance(sub.args[0], ast.Constant)
        ):
            yield str(sub.args[0].value)


def secret_comparisons(source: str) -> list[tuple[int, str]]:
    """(line, comparison) for every ``==``/``!=`` with a secret-looking name on either side."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
            continue
        operands = [node.left, *node.comparators]
        if any(SECRET_WORDS.search(name) for operand in operands for name in _names(operand)):
            found.append((node.lineno, ast.unparse(node)))
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_secret_is_compared_with_eq() -> None:
    offenders = []
    for path in _modules():
        relative = path.relative_to(ROOT).as_posix()
        for line, comparison in secret_comparisons(path.read_text()):
            if (relative, comparison) not in ALLOWED:
                offenders.append(f"{relative}:{line}: {comparison}")
    assert offenders == [], "use hmac.compare_digest for secrets:\n" + "\n".join(offenders)


def test_every_allowed_comparison_still_exists() -> None:
    present = {
        (path.relative_to(ROOT).as_posix(), comparison)
        for path in _modules()
        for _, comparison in secret_comparisons(path.read_text())
    }
    assert set(ALLOWED) <= present, "stale ALLOWED entries: remove them"


@pytest.mark.parametrize(
    "source",
    [
        "ok = presented == token",
        "ok = request.headers['Authorization'] != expected",
        "ok = request.headers.get('X-Paper-Control-Token') == configured",
        "ok = row.token_digest == token_digest(presented)",
        "ok = settings.client_secret.get_secret_value() == value",
        "ok = user.password == given",
        "ok = a == b == api_key_secret",
        "if hashlib.sha256(x).digest() != stored: pass",
    ],
)
def test_the_check_catches(source: str) -> None:
    assert len(secret_comparisons(source)) == 1


@pytest.mark.parametrize(
    "source",
    [
        "ok = hmac.compare_digest(presented, token)",
        "ok = token is None",
        "ok = grant_type != 'refresh_token'",
        "ok = presented in tokens",
        "ok = count == limit",
    ],
)
def test_the_check_lets_pass(source: str) -> None:
    assert secret_comparisons(source) == []


def test_ruff_security_rules_stay_on() -> None:
    lint = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert "S" in lint["select"]
    assert not any(rule == "S" or rule.startswith("S") for rule in lint.get("ignore", []))
    for pattern, ignored in lint.get("per-file-ignores", {}).items():
        if not pattern.startswith("tests/"):
            assert "S" not in ignored, pattern
