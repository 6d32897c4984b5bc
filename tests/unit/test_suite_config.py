"""The test suite's own guards: a per-test timeout is active, so a hang fails one test; every
integration test file carries the ``integration`` marker (``-m "not integration"`` works)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

INTEGRATION_DIR = Path(__file__).resolve().parents[1] / "integration"


def test_per_test_timeout_is_configured_and_the_plugin_is_active(
        request: pytest.FixtureRequest) -> None:
    assert request.config.pluginmanager.hasplugin("timeout"), "pytest-timeout is not installed"
    configured = float(request.config.getini("timeout") or 0)
    assert 0 < configured <= 600, configured


@pytest.mark.timeout(120)
def test_a_hang_fails_its_own_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import time
        def test_hangs():
            time.sleep(30)
    """)
    result = pytester.runpytest_subprocess("-p", "timeout", "--timeout", "2")
    result.assert_outcomes(failed=1)
    assert "Timeout" in result.stdout.str()


def _marks_integration(module: ast.Module) -> bool:
    """A module-level ``pytestmark = pytest.mark.integration`` (alone or in a list/tuple)."""
    for node in module.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            values = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [
                node.value]
            return any(ast.unparse(v) == "pytest.mark.integration" for v in values)
    return False


def test_every_integration_file_declares_the_integration_marker() -> None:
    files = sorted(INTEGRATION_DIR.glob("test_*.py"))
    assert files, INTEGRATION_DIR
    missing = [f.name for f in files
               if not _marks_integration(ast.parse(f.read_text(encoding="utf-8")))]
    assert not missing, f"add `pytestmark = pytest.mark.integration` to: {missing}"
