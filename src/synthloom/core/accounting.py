"""Per-step counts and the run summary (summary.json).

For map and filter steps ``in == out + failed + dropped`` exactly. Expand steps count inputs the
same way (``in == expanded + failed + dropped``) and report fan-out in ``out``. Global steps
follow the map rule for their inputs; their ``out`` may differ when they merge records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: summary.json ``status``: what the run's outputs are worth.
STATUSES = {
    "ok": "finished, nothing failed",
    "partial": "finished, some items failed (failed.jsonl)",
    "stopped": "stopped cleanly by the token budget; rerun to continue",
    "failed": "a fatal error (``error``), or every item failed and nothing came out",
    "interrupted": "Ctrl-C, SIGTERM or a cancelled task; rerun to continue",
}
#: Statuses whose outputs replace the previous run's (data.jsonl, failed.jsonl, ...), as does
#: a ``failed`` run without a fatal ``error`` (every item failed: it finished); after the
#: others the previous complete outputs stay and this run's are left as NAME.partial.
COMPLETE = frozenset({"ok", "partial", "stopped"})


@dataclass
class StepStats:
    name: str
    kind: str
    in_: int = 0
    out: int = 0
    failed: int = 0
    dropped: int = 0
    cached: int = 0
    llm_calls: int = 0
    llm_cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    #: expand steps: inputs that produced at least one output
    expanded: int = 0
    #: global steps: inputs kept (outputs may be more or fewer when a step merges records)
    kept: int = 0
    done: bool = False

    def to_json(self) -> dict[str, Any]:
        raw = asdict(self)
        # Key order as users read it: name, kind, in, out, ...
        data = {"name": raw.pop("name"), "kind": raw.pop("kind"), "in": raw.pop("in_"), **raw}
        data.pop("done")
        if self.kind != "expand":
            data.pop("expanded")
        if self.kind != "global":
            data.pop("kept")
        data["seconds"] = round(self.seconds, 3)
        return data

    def closes(self) -> bool:
        """The accounting invariant of this step kind."""
        if self.kind in ("map", "filter"):
            return self.in_ == self.out + self.failed + self.dropped
        if self.kind == "expand":
            return self.in_ == self.expanded + self.failed + self.dropped
        if self.kind == "global":
            return self.in_ == self.kept + self.failed + self.dropped
        return True


@dataclass
class RunSummary:
    recipe: str
    steps: list[StepStats] = field(default_factory=list)
    records: int = 0
    seconds: float = 0.0
    status: str = "ok"
    stopped_reason: str | None = None
    llm: dict[str, Any] = field(default_factory=dict)
    #: Per named model (recipe ``models:``): its client's calls, tokens, retries, and steps.
    models: dict[str, Any] = field(default_factory=dict)
    #: ``--regenerate rejected``: items given new samples, and decisions it could not honour.
    regenerated: dict[str, Any] | None = None
    #: Why a ``failed`` or ``interrupted`` run ended (``Class: message``).
    error: str | None = None
    #: run.db cache rows that could not be decoded: treated as misses and recomputed.
    cache_bad_rows: int = 0

    @property
    def complete(self) -> bool:
        """The run's outputs replace the previous ones (see ``COMPLETE``). A run in which every
        item failed also finished: its failed.jsonl is what the user needs to read."""
        return self.status in COMPLETE or (self.status == "failed" and self.error is None)

    def to_json(self) -> dict[str, Any]:
        data = {
            "recipe": self.recipe,
            "status": self.status,
            "stopped_reason": self.stopped_reason,
            "error": self.error,
            "records": self.records,
            "llm_calls": sum(s.llm_calls for s in self.steps),
            "cache_hits": sum(s.cached + s.llm_cache_hits for s in self.steps),
            "prompt_tokens": sum(s.prompt_tokens for s in self.steps),
            "completion_tokens": sum(s.completion_tokens for s in self.steps),
            "failed": sum(s.failed for s in self.steps),
            "dropped": sum(s.dropped for s in self.steps),
            "seconds": round(self.seconds, 3),
            "llm": self.llm,
            "steps": [s.to_json() for s in self.steps],
        }
        if self.models:
            data["models"] = self.models
        if self.regenerated is not None:
            data["regenerated"] = self.regenerated
        if self.cache_bad_rows:
            data["cache_bad_rows"] = self.cache_bad_rows
        return data
