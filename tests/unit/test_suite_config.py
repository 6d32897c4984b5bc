"""The test suite's own guards: a per-test timeout is active, so a hang fails one test."""

from __future__ import annotations

import pytest


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
