"""Records: flat JSON-able columns plus ``_meta`` provenance.

A record is a plain ``dict`` (fast, JSON-native). ``_meta`` holds:
``id`` (content-derived), ``parents``, ``source``, ``step``, ``model``, ``template_hash``,
``sample_index`` and ``usage`` ({prompt_tokens, completion_tokens}).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from synthloom.core.fingerprint import stable_hash

META = "_meta"


def columns_of(record: dict[str, Any]) -> dict[str, Any]:
    """The record's data columns, without ``_meta``."""
    return {k: v for k, v in record.items() if k != META}


def record_id(step: str, parents: list[str], sample_index: int, columns: dict[str, Any]) -> str:
    """Content-derived id: the same parents, step, sample and columns give the same id."""
    return stable_hash("record", step, parents, sample_index, columns)


def make_record(
    columns: dict[str, Any],
    *,
    step: str,
    parents: list[str] | None = None,
    source: dict[str, Any] | str | None = None,
    model: str | None = None,
    template_hash: str | None = None,
    sample_index: int = 0,
    usage: dict[str, int] | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    parents = list(parents or [])
    meta: dict[str, Any] = {
        "id": record_id(step, parents, sample_index, columns),
        "parents": parents,
        "source": source,
        "step": step,
        "model": model,
        "template_hash": template_hash,
        "sample_index": sample_index,
        "usage": usage or {"prompt_tokens": 0, "completion_tokens": 0},
    }
    if extra_meta:
        meta.update(extra_meta)
    return {**columns, META: meta}


def rid(record: dict[str, Any]) -> str:
    return record[META]["id"]


@dataclass(slots=True)
class Output:
    """One output of a step for one input: the columns it adds or replaces, and provenance."""

    columns: dict[str, Any]
    sample_index: int = 0
    model: str | None = None
    template_hash: str | None = None
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0})
    # Extra parents beyond the input record (global steps that merge records).
    extra_parents: list[str] = field(default_factory=list)
    # Replace the input's columns instead of extending them.
    replace: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "sample_index": self.sample_index,
            "model": self.model,
            "template_hash": self.template_hash,
            "usage": self.usage,
            "extra_parents": self.extra_parents,
            "replace": self.replace,
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Output:
        return cls(**data)


@dataclass(slots=True)
class ItemResult:
    """What a step did with one input record: outputs, or a drop (with reason), or a failure."""

    outputs: list[Output] = field(default_factory=list)
    dropped: str | None = None
    error_class: str | None = None
    error_message: str | None = None
    llm_calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def failed(self) -> bool:
        return self.error_class is not None

    @classmethod
    def failure(cls, exc: BaseException, **counts: int) -> ItemResult:
        return cls(error_class=type(exc).__name__, error_message=str(exc) or repr(exc), **counts)

    @classmethod
    def drop(cls, reason: str, **counts: int) -> ItemResult:
        return cls(dropped=reason, **counts)

    def cacheable(self) -> bool:
        # Failures are retried on the next run, never cached.
        return not self.failed

    def to_json(self) -> dict[str, Any]:
        return {
            "outputs": [o.to_json() for o in self.outputs],
            "dropped": self.dropped,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }

    @classmethod
    def from_cache(cls, data: dict[str, Any]) -> ItemResult:
        # Tokens are not re-counted: a replayed item spent nothing in this run (the records'
        # _meta.usage still tells what each output originally cost).
        return cls(outputs=[Output.from_json(o) for o in data["outputs"]], dropped=data["dropped"])
