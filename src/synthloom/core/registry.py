"""Step and sink types by their YAML ``type`` name.

Built-in modules register on import (``@register_step``). ``load_builtins`` imports every module
of the packages below, lazily, so core stays free of imports from the layers above it and a new
step type needs no edit here. Modules must therefore keep heavy imports (torch, ray, vllm)
inside functions.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from synthloom.core.errors import RecipeError

_STEPS: dict[str, type[Any]] = {}
_SINKS: dict[str, type[Any]] = {}

#: Packages whose modules register the shipped step and sink types.
BUILTIN_PACKAGES = [
    "synthloom.sources",
    "synthloom.methods",
    "synthloom.quality",
    "synthloom.verify",
    "synthloom.export",
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
    if _loaded:
        return
    for package_name in BUILTIN_PACKAGES:
        try:
            package = importlib.import_module(package_name)
        except ModuleNotFoundError:
            continue  # a layer not built yet
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            importlib.import_module(info.name)
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
