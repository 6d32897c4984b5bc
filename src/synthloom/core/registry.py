"""Step and sink types by their YAML ``type`` name.

Built-in modules register on import; ``load_builtins`` imports them lazily so core stays free
of imports from the layers above it.
"""

from __future__ import annotations

import importlib
from typing import Any

from synthloom.core.errors import RecipeError

_STEPS: dict[str, type[Any]] = {}
_SINKS: dict[str, type[Any]] = {}

#: Modules whose import registers the shipped step and sink types.
BUILTIN_MODULES = [
    "synthloom.sources.files",
    "synthloom.methods.generate",
    "synthloom.quality.filters",
    "synthloom.export.sinks",
]
_loaded = False


def register_step(cls: type[Any]) -> type[Any]:
    _STEPS[cls.type_name] = cls
    return cls


def register_sink(cls: type[Any]) -> type[Any]:
    _SINKS[cls.type_name] = cls
    return cls


def load_builtins() -> None:
    global _loaded
    if not _loaded:
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        _loaded = True


def step_type(name: str) -> type[Any]:
    load_builtins()
    if name not in _STEPS:
        raise RecipeError(f"unknown step type {name!r}; known: {', '.join(sorted(_STEPS))}")
    return _STEPS[name]


def sink_type(name: str) -> type[Any]:
    load_builtins()
    if name not in _SINKS:
        raise RecipeError(f"unknown sink type {name!r}; known: {', '.join(sorted(_SINKS))}")
    return _SINKS[name]


def step_types() -> dict[str, type[Any]]:
    load_builtins()
    return dict(_STEPS)
