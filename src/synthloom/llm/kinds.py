"""Which backend a step's client talks to, for steps whose limits depend on it.

llama.cpp (the embedded model) refuses JSON grammars with a string repetition much above 900
characters and then decodes unconstrained; steps cap strings and prompts there and use the
method's own values on every other backend.
"""

from __future__ import annotations

from typing import Any

#: Backends whose structured output is a llama.cpp grammar with its size limits.
GRAMMAR_LIMITED = frozenset({"llamacpp"})


def backend_kind(ctx: Any) -> str | None:
    """The kind of the client ``ctx`` (an ItemContext or RunContext) runs with; ``None``
    without one."""
    if ctx is None:
        return None
    try:
        llm = ctx.llm
    except RuntimeError:  # ItemContext.llm raises when the run has no model
        return None
    if llm is None:
        return None
    kind = getattr(llm, "backend_kind", None)
    if kind is None:  # a client without the property: ask its backend
        kind = getattr(getattr(llm, "backend", None), "kind", None)
    return kind if isinstance(kind, str) else None


def grammar_limited(ctx: Any) -> bool:
    """The step's client is llama.cpp: keep JSON strings and prompts short."""
    return backend_kind(ctx) in GRAMMAR_LIMITED
