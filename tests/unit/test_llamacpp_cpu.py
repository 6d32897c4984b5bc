"""The AMX guard of the embedded backend (llm/backends/llamacpp_cpu.py): which CPUs get plain
weight buffers, the environment override, and the patched defaults (a stand-in ctypes module
here; the real llama-cpp-python is exercised by every embedded integration test)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from synthloom.llm.backends import llamacpp_cpu
from synthloom.llm.backends.llamacpp_cpu import ENV, apply_extra_buffer_setting, cpu_has_amx


def _cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Intel(R) Xeon(R)\nflags\t\t: {flags}\n")
    return path


def test_cpu_has_amx_reads_the_flags_line(tmp_path: Path) -> None:
    assert cpu_has_amx(_cpuinfo(tmp_path, "fpu sse avx512f amx_bf16 amx_tile amx_int8"))
    assert not cpu_has_amx(_cpuinfo(tmp_path, "fpu sse avx2 avx512f"))
    assert not cpu_has_amx(tmp_path / "missing")


class _FakeCtypes:
    """Stands in for llama_cpp.llama_cpp: llama_model_default_params() -> a fresh struct."""

    def __init__(self, has_field: bool = True) -> None:
        fields = {"use_extra_bufts": True} if has_field else {}
        self.llama_model_default_params = lambda: SimpleNamespace(n_gpu_layers=0, **fields)


def test_extra_buffers_off_on_amx_and_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setattr(llamacpp_cpu, "cpu_has_amx", lambda: True)
    fake = _FakeCtypes()
    assert apply_extra_buffer_setting(fake) is False
    assert fake.llama_model_default_params().use_extra_bufts is False
    assert apply_extra_buffer_setting(fake) is False  # idempotent: wrapped once
    assert fake.llama_model_default_params().n_gpu_layers == 0
    monkeypatch.setenv(ENV, "1")
    kept = _FakeCtypes()
    assert apply_extra_buffer_setting(kept) is True
    assert kept.llama_model_default_params().use_extra_bufts is True
    monkeypatch.setattr(llamacpp_cpu, "cpu_has_amx", lambda: False)
    monkeypatch.setenv(ENV, "0")
    forced = _FakeCtypes()
    assert apply_extra_buffer_setting(forced) is False
    assert forced.llama_model_default_params().use_extra_bufts is False
    old = _FakeCtypes(has_field=False)  # an older llama-cpp-python: nothing to turn off
    assert apply_extra_buffer_setting(old) is True
