"""llama.cpp's "extra" CPU weight buffers (AMX tiles, repacked layouts) on AMX machines.

On a CPU that reports AMX (Intel Sapphire Rapids and later), llama.cpp keeps Q4/Q8 weights in
AMX buffers, and with llama-cpp-python 0.3.36 any batched decode (a prompt of more than one
token) then dies with SIGSEGV — seen on a Firecracker VM whose guest kernel lists
``amx_int8``. Loading the model with ``use_extra_bufts = False`` keeps plain CPU buffers and
generates correctly; the embedded 135M model loses nothing measurable.

``SYNTHLOOM_LLAMA_EXTRA_BUFFERS=1`` keeps the extra buffers (a machine where AMX works);
``=0`` turns them off anywhere. Unset: off where the CPU reports AMX, on elsewhere.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path
from typing import Any

ENV = "SYNTHLOOM_LLAMA_EXTRA_BUFFERS"
AMX_FLAGS = ("amx_int8", "amx_bf16", "amx_tile")


def cpu_has_amx(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    try:
        text = cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    return any(flag in flags for flag in AMX_FLAGS)


def extra_buffers_wanted() -> bool:
    setting = os.environ.get(ENV)
    if setting is not None and setting.strip():
        return setting.strip().lower() not in ("0", "false", "no", "off")
    return not cpu_has_amx()


def apply_extra_buffer_setting(llama_cpp_module: Any = None) -> bool:
    """Make every ``Llama`` loaded later in this process use (or not) the extra buffers;
    returns whether they are used. Idempotent; a llama-cpp-python without the setting is
    left alone."""
    if extra_buffers_wanted():
        return True
    if llama_cpp_module is None:
        import llama_cpp.llama_cpp as llama_cpp_module  # the ctypes layer Llama() reads
    defaults = llama_cpp_module.llama_model_default_params
    if getattr(defaults, "_synthloom_no_extra_bufts", False):
        return False
    if not hasattr(defaults(), "use_extra_bufts"):
        return True

    def without_extra_buffers() -> Any:
        params = defaults()
        params.use_extra_bufts = False
        return params

    without_extra_buffers._synthloom_no_extra_bufts = True  # type: ignore[attr-defined]
    llama_cpp_module.llama_model_default_params = without_extra_buffers
    return False


def serve_main() -> None:
    """``python -m llama_cpp.server`` with the same setting (the tests' real server):
    ``python -c "from synthloom.llm.backends.llamacpp_cpu import serve_main; serve_main()" ARGS``.
    """
    apply_extra_buffer_setting()
    sys.argv = ["llama_cpp.server", *sys.argv[1:]]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
