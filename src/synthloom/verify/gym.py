"""reasoning-gym (open-thought/reasoning-gym) as a source of verifiable tasks and their scorer.

reasoning-gym has 100+ procedural datasets (``reasoning_gym.create_dataset(name, seed=, size=,
**config)``); each entry is ``{question, answer, metadata}`` and each dataset scores an answer
with ``score_answer(answer, entry) -> float``. Here:

* :func:`gym_items` turns a dataset into records: ``question``, ``answer`` (its reference answer,
  None where reasoning-gym stores none), the task name ``gym/<dataset>``, and what regenerates
  the entry exactly - ``gym_dataset``, ``gym_config``, ``gym_seed``, ``gym_size``, ``gym_index``
  (entries are a pure function of these) - plus ``gym_metadata`` (JSON-able) and
  ``gym_version``;
* :func:`gym_score` regenerates the entry from those columns and scores a reply with the
  dataset's own scorer (the final answer read by :mod:`synthloom.verify.answers`);
  :func:`verify_gym_answer` counts **only a score of 1.0** as right: the scorers give partial
  credit (a hedged or over-long answer can score 0.3-0.9).

The package is the ``gym`` extra (``pip install "synthloom[gym]"``); without it every call
raises a :class:`SynthloomError` naming the extra.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from types import ModuleType
from typing import Any

from synthloom.core.errors import SynthloomError
from synthloom.verify import answers

INSTALL_HINT = ('reasoning-gym tasks need the gym extra: pip install "synthloom[gym]" '
                '(or pip install "reasoning-gym>=0.1.25")')
#: Record columns that regenerate an entry (and so travel into exports as ground truth).
GYM_COLUMNS = ("gym_dataset", "gym_config", "gym_seed", "gym_size", "gym_index")


def require_gym() -> ModuleType:
    """The ``reasoning_gym`` module, or a SynthloomError naming the extra to install."""
    try:
        import reasoning_gym
    except ImportError as exc:
        raise SynthloomError(INSTALL_HINT) from exc
    return reasoning_gym


def dataset_names() -> list[str]:
    """Every dataset reasoning-gym registers, sorted."""
    require_gym()
    from reasoning_gym.factory import DATASETS

    return sorted(DATASETS)


def gym_version() -> str:
    from importlib.metadata import version

    return version("reasoning-gym")


@lru_cache(maxsize=128)
def _dataset(name: str, config_json: str, seed: int, size: int) -> Any:
    rg = require_gym()
    from reasoning_gym.factory import DATASETS

    if name not in DATASETS:
        raise SynthloomError(f"unknown reasoning-gym dataset {name!r}; "
                             f"known: {', '.join(sorted(DATASETS))}")
    try:
        return rg.create_dataset(name, seed=seed, size=size, **json.loads(config_json))
    except (TypeError, ValueError, AssertionError) as exc:
        # A config key the dataset does not have, or a value it refuses.
        raise SynthloomError(f"reasoning-gym dataset {name!r}: bad config "
                             f"{json.loads(config_json)}: {exc}") from exc


def dataset(name: str, config: dict[str, Any] | None = None, *, seed: int = 0,
            size: int = 100) -> Any:
    """reasoning-gym's dataset object (cached: entries are regenerated, not stored)."""
    return _dataset(name, json.dumps(config or {}, sort_keys=True), int(seed), int(size))


def jsonable(value: Any) -> Any:
    """Metadata as plain JSON: tuples and sets to lists, numpy scalars to Python, keys to
    strings, anything else to its ``str``."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((jsonable(v) for v in value), key=repr)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    item = getattr(value, "item", None)  # numpy scalars (np.str_ is a str already)
    if callable(item):
        try:
            return jsonable(item())
        except (TypeError, ValueError):
            pass
    return str(value)


def gym_items(name: str, config: dict[str, Any] | None = None, *, count: int,
              seed: int = 0) -> Iterator[dict[str, Any]]:
    """``count`` records of dataset ``name`` with ``config`` (see the module docstring)."""
    data = dataset(name, config, seed=seed, size=count)
    version = gym_version()
    for index in range(count):
        entry = data[index]
        answer = entry.get("answer")
        yield {"task": f"gym/{name}", "question": str(entry["question"]),
               "answer": None if answer is None else str(answer),
               "gym_dataset": name, "gym_config": dict(config or {}), "gym_seed": int(seed),
               "gym_size": int(count), "gym_index": index,
               "gym_metadata": jsonable(entry.get("metadata", {})),
               "gym_version": version}


def gym_entry(record: dict[str, Any]) -> dict[str, Any]:
    """The reasoning-gym entry a record came from, regenerated from its ``gym_*`` columns."""
    missing = [c for c in GYM_COLUMNS if c not in record]
    if missing:
        raise KeyError(f"not a reasoning-gym record: no {', '.join(missing)}")
    data = dataset(str(record["gym_dataset"]), record.get("gym_config") or {},
                   seed=int(record["gym_seed"]), size=int(record["gym_size"]))
    return data[int(record["gym_index"])]


def read_answer(reply: str | None) -> str | None:
    """The final answer of a reply as reasoning-gym's scorers want it: the shared reader's
    value (rules 1-5), else the whole reply without its reasoning - reasoning-gym asks for the
    bare answer, and some are grids with blank lines inside (futoshiki) that a "last
    paragraph" would cut. Trimmed, otherwise as written: the scorers compare exactly."""
    found = answers.extract(reply, fallback="none")
    if found is not None:
        return found.value.strip()
    bare = answers.strip_reasoning(reply).strip()
    return bare or None


def gym_score(record: dict[str, Any], reply: str | None) -> float:
    """reasoning-gym's score (0-1) of ``reply`` for the record's entry."""
    entry = gym_entry(record)
    data = dataset(str(record["gym_dataset"]), record.get("gym_config") or {},
                   seed=int(record["gym_seed"]), size=int(record["gym_size"]))
    answer = read_answer(reply)
    if answer is None:
        return 0.0
    return float(data.score_answer(answer, entry))


def grade(record: dict[str, Any], reply: str | None) -> tuple[float, str | None]:
    """reasoning-gym's score of ``reply`` and None when it is 1.0, else why it is not right
    (no answer, the partial score, or a record that cannot be regenerated)."""
    if read_answer(reply) is None:
        return 0.0, "no answer"
    try:
        score = gym_score(record, reply)
    except (KeyError, TypeError, ValueError) as exc:
        return 0.0, f"cannot check: {type(exc).__name__}: {exc}"
    return score, None if score >= 1.0 else f"reasoning-gym score {score:.3g} < 1.0"


def verify_gym_answer(record: dict[str, Any], reply: str | None) -> str | None:
    """None when reasoning-gym scores the reply 1.0, else why not (the score, when partial)."""
    return grade(record, reply)[1]


def check_gym_record(record: dict[str, Any]) -> str | None:
    """None when the stored reference answer scores 1.0, else why not."""
    if record.get("answer") is None:
        return "reasoning-gym stores no reference answer for this item"
    reason = verify_gym_answer(record, str(record["answer"]))
    return None if reason is None else f"stored answer fails: {reason}"
