"""Step and sink types by their YAML ``type`` name.

Three ways a type is found:

- built in: ``load_builtins`` imports every module of ``BUILTIN_PACKAGES``, lazily, so core
  stays free of imports from the layers above it and a new step type needs no edit here (each
  module registers its types with ``@register_step``). Modules must therefore keep heavy imports
  (torch, ray, vllm) inside functions.
- a third-party package: an entry point in the group ``synthloom.steps`` (``synthloom.sinks``
  for sinks) whose name is the type name and whose value is ``module:Class`` (or a module whose
  import registers its types).
- a recipe naming ``module:Class`` as its ``type:``: the module is imported from the path, else
  from the recipe's folder (``resolve_step_type``). docs/extending.md walks through all three.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import pkgutil
import sys
import types
from pathlib import Path
from typing import Any

from synthloom.core.errors import RecipeError
from synthloom.core.steps import Sink, Step

_STEPS: dict[str, type[Any]] = {}
_SINKS: dict[str, type[Any]] = {}
#: Entry points that failed to load: "group:name" → the cause (reported when the name is used).
_BROKEN: dict[str, str] = {}

#: Packages whose modules register the shipped step and sink types.
BUILTIN_PACKAGES = [
    "synthloom.sources",
    "synthloom.methods",
    "synthloom.quality",
    "synthloom.verify",
    "synthloom.export",
]
#: Entry-point groups third-party packages register their types in.
STEP_GROUP = "synthloom.steps"
SINK_GROUP = "synthloom.sinks"
_loaded = False
_plugins_loaded = False
#: Recipe folders that ``module:Class`` types were imported from (added to sys.path): an
#: executor whose workers do not inherit sys.path (Ray) must put them on the workers' path.
_MODULE_FOLDERS: list[str] = []


def register_step(cls: type[Any]) -> type[Any]:
    _STEPS[cls.type_name] = cls
    return cls


def register_sink(cls: type[Any]) -> type[Any]:
    _SINKS[cls.type_name] = cls
    return cls


def load_builtins() -> None:
    global _loaded
    if not _loaded:
        for package_name in BUILTIN_PACKAGES:
            try:
                package = importlib.import_module(package_name)
            except ModuleNotFoundError:
                continue  # a layer not built yet
            for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
                importlib.import_module(info.name)
        _loaded = True
    load_plugins()


def load_plugins() -> None:
    """Register the types of installed packages' entry points (once). A broken entry point does
    not stop the others: its cause is kept and reported when a recipe names its type."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for group, table in ((STEP_GROUP, _STEPS), (SINK_GROUP, _SINKS)):
        for ep in importlib.metadata.entry_points(group=group):
            if ep.name in table:
                continue  # a built-in type keeps its name; a plugin cannot replace it
            try:
                loaded = ep.load()
            except Exception as exc:  # noqa: BLE001 - one bad plugin must not break the rest
                _BROKEN[f"{group}:{ep.name}"] = (
                    f"entry point {ep.name} = {ep.value} ({group}) could not be loaded: "
                    f"{type(exc).__name__}: {exc}")
                continue
            if isinstance(loaded, types.ModuleType):
                continue  # importing it registered its types (@register_step)
            problem = _not_a_type(loaded, group)
            if problem:
                _BROKEN[f"{group}:{ep.name}"] = f"entry point {ep.name} = {ep.value}: {problem}"
                continue
            if "type_name" not in vars(loaded):
                loaded.type_name = ep.name
            table[ep.name] = loaded


def _not_a_type(obj: Any, group: str) -> str | None:
    """Why ``obj`` cannot be a step (or sink) type; None when it can."""
    base = Sink if group == SINK_GROUP else Step
    if not (isinstance(obj, type) and issubclass(obj, base)):
        return f"{obj!r} is not a subclass of synthloom.core.steps.{base.__name__}"
    if base is Step and not hasattr(obj, "kind"):
        return (f"{obj.__name__} has no kind: subclass SourceStep, MapStep, ExpandStep, "
                "FilterStep or GlobalStep, not Step")
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(obj.__abstractmethods__))
        return f"{obj.__name__} is abstract (does not define {missing})"
    return None


def _unknown(kind: str, name: str, table: dict[str, type[Any]], group: str) -> RecipeError:
    if f"{group}:{name}" in _BROKEN:
        return RecipeError(f"{kind} type {name!r}: {_BROKEN[f'{group}:{name}']}")
    broken = [key.partition(":")[2] for key in _BROKEN if key.startswith(f"{group}:")]
    note = f" (entry points that failed to load: {', '.join(broken)})" if broken else ""
    return RecipeError(f"unknown {kind} type {name!r}; known: {', '.join(sorted(table))}{note}; "
                       "or name a class: module:Class (docs/extending.md)")


def step_type(name: str) -> type[Any]:
    load_builtins()
    if name not in _STEPS:
        raise _unknown("step", name, _STEPS, STEP_GROUP)
    return _STEPS[name]


def sink_type(name: str) -> type[Any]:
    load_builtins()
    if name not in _SINKS:
        raise _unknown("sink", name, _SINKS, SINK_GROUP)
    return _SINKS[name]


def step_types() -> dict[str, type[Any]]:
    load_builtins()
    return dict(_STEPS)


def module_folders() -> list[str]:
    """The recipe folders ``module:Class`` types came from, for workers' import paths."""
    return list(_MODULE_FOLDERS)


def resolve_step_type(name: str, base: Path | None = None) -> type[Any]:
    """A registered type name, or ``module:Class`` imported from the path, else from ``base``
    (the recipe's folder). Raises RecipeError with the cause."""
    if ":" not in name:
        return step_type(name)
    return _import_class(name, base, STEP_GROUP)


def resolve_sink_type(name: str, base: Path | None = None) -> type[Any]:
    if ":" not in name:
        return sink_type(name)
    return _import_class(name, base, SINK_GROUP)


def _import_class(spec: str, base: Path | None, group: str) -> type[Any]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise RecipeError(f"type {spec!r}: expected module:Class")
    module = _import_module(spec, module_name, base)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise RecipeError(f"type {spec!r}: module {module_name} ({module.__file__}) has no "
                              f"attribute {attr!r}")
        obj = getattr(obj, part)
    problem = _not_a_type(obj, group)
    if problem:
        raise RecipeError(f"type {spec!r}: {problem}")
    if "type_name" not in vars(obj):
        obj.type_name = spec  # the name the recipe gave it enters the fingerprint
    return obj


def _import_module(spec: str, module_name: str, base: Path | None) -> types.ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if not _is_the_module(exc, module_name):
            raise RecipeError(f"type {spec!r}: importing {module_name} failed: "
                              f"{type(exc).__name__}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any import error is the recipe's cause
        raise RecipeError(f"type {spec!r}: importing {module_name} failed: "
                          f"{type(exc).__name__}: {exc}") from None
    folder = str(base.resolve()) if base is not None else None
    if folder is None or not _exists_in(folder, module_name):
        where = f" nor in the recipe's folder {folder}" if folder else ""
        raise RecipeError(f"type {spec!r}: no module named {module_name!r} on the Python path"
                          f"{where}")
    # Appended, not prepended: an installed module of the same name wins, and the recipe's
    # folder cannot shadow the standard library. It stays on sys.path so the process pool's
    # workers (started later, with the parent's sys.path) can unpickle the step.
    if folder not in sys.path:
        sys.path.append(folder)
    if folder not in _MODULE_FOLDERS:
        _MODULE_FOLDERS.append(folder)
    importlib.invalidate_caches()
    try:
        return importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import error is the recipe's cause
        raise RecipeError(f"type {spec!r}: importing {module_name} from {folder} failed: "
                          f"{type(exc).__name__}: {exc}") from None


def _is_the_module(exc: ModuleNotFoundError, module_name: str) -> bool:
    """The missing module is the one named (or a parent package of it), not an import inside."""
    return exc.name is not None and (module_name == exc.name
                                     or module_name.startswith(exc.name + "."))


def _exists_in(folder: str, module_name: str) -> bool:
    top = Path(folder) / module_name.split(".")[0]
    return top.with_suffix(".py").is_file() or top.is_dir()
