"""SynthQuestions demo packing per document: the old whole-pool shuffle vs consistent hashing.

    python benchmarks/demo_packing.py                 # 10k and 100k demos
    python benchmarks/demo_packing.py --sizes 2000,20000 --documents 100

``before`` is an inline copy of the old ``pack_demos`` (filter the pool, shuffle all of it with a
per-item seed, walk the shuffle). ``after`` is what the step now does per document: the walk in
``context_dependence`` (tokens memoised per demo content, cold here: every document meets
mostly new demos) and the same walk plus rendering in ``process``. ``ring_s`` is the one-time
ring build (a content hash per demo), paid once per run, not per document. Both use the paper
profile (7,500-token prompt budget, 10 demos) and the estimate tokenizer (no model). Last line:
one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from synthloom.core.context import RunContext
from synthloom.core.records import META, make_record
from synthloom.methods.synthquestions.synthesize import Limits, SynthesizeInstruction
from synthloom.prompting.textutil import estimate_tokens

WORDS = ("cache", "header", "starter", "flour", "chain", "gear", "ledger", "tax", "kiln", "glaze",
         "router", "packet", "orchard", "graft", "violin", "string", "canoe", "paddle")


def demos_of(n: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(60, 260)))
        out.append(make_record({
            "instruction": f"Question {i}: how do I {rng.choice(WORDS)} the {rng.choice(WORDS)}?",
            "document": words, "scene": f"A user {i} at work.",
            "query_compositions": {"ability": "a", "knowledge": "k", "extra_information": "e",
                                   "output": "o"},
            "document_id": f"D{rng.randrange(n // 4 + 1)}"}, step="attribute"))
    return out


def old_pack_demos(step: SynthesizeInstruction, demos: list[dict[str, Any]], seed: int,
                   count: Any, limits: Limits, base_tokens: int,
                   exclude_document: str | None) -> tuple[list[str], list[str], int]:
    """The pack_demos of synthesize.py before consistent hashing (version 4), verbatim."""
    column = step.config.demo_document_column
    usable = [d for d in demos
              if exclude_document is None or d.get(column) != exclude_document]
    order = list(range(len(usable)))
    random.Random(seed).shuffle(order)
    budget = limits.demo_token_budget
    used = base_tokens if limits.budget_scope == "prompt" else 0
    rendered, ids, total = [], [], 0
    shortest: tuple[int, str, str] | None = None
    for index in order:
        if len(rendered) >= step.config.max_demos:
            break
        demo = usable[index]
        text = step.template("demo_template").render_text({
            **demo,
            "query_compositions": demo.get("query_compositions") or {},
            "document": step.cut(str(demo.get("document") or ""), limits.demo_doc_tokens,
                                 limits.doc_chars, count),
        }).strip()
        tokens = count(text)
        if shortest is None or tokens < shortest[0]:
            shortest = (tokens, text, demo[META]["id"])
        if used + total + tokens > budget:
            if limits.stop_at_first_misfit and rendered:
                break
            continue
        rendered.append(text)
        ids.append(demo[META]["id"])
        total += tokens
    if not rendered and shortest is not None:
        return [shortest[1]], [shortest[2]], shortest[0]
    return rendered, ids, total


def measure(size: int, documents: int, run_dir: Path) -> dict[str, Any]:
    demos = demos_of(size)
    targets = [f"D{i}" for i in range(documents)]
    base_tokens = 600  # the paper prompt without demos and a 4,096-character document

    old = SynthesizeInstruction(name="synthesize", demos="attribute", context=["attribute"])
    old.setup(RunContext(run_dir=run_dir))
    limits = old.limits(None)
    started = time.perf_counter()
    for i, target in enumerate(targets):
        old_pack_demos(old, demos, i, estimate_tokens, limits, base_tokens, target)
    before = (time.perf_counter() - started) / documents

    new = SynthesizeInstruction(name="synthesize", demos="attribute", context=["attribute"])
    new.setup(RunContext(run_dir=run_dir))
    started = time.perf_counter()
    new.choose_demos(demos, "warm-up", estimate_tokens, limits)  # builds the ring
    ring_s = time.perf_counter() - started
    memo: dict[str, int] = {}
    started = time.perf_counter()
    for target in targets:
        anchor = f"anchor of {target}"
        # context_dependence's walk, then process's walk and rendering (the step does both)
        new.choose_demos(demos, anchor, estimate_tokens, limits, base_tokens, target, memo)
        new.pack_demos(demos, anchor, estimate_tokens, limits, base_tokens, target, memo)
    after = (time.perf_counter() - started) / documents
    return {"demos": size, "documents": documents, "before_ms": round(before * 1e3, 3),
            "after_ms": round(after * 1e3, 3), "ratio": round(before / after, 1),
            "ring_s": round(ring_s, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--documents", type=int, default=200)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            row = measure(size, args.documents, Path(tmp))
            results.append(row)
            print(f"{size:>7} demos: before {row['before_ms']:8.3f} ms/document, after "
                  f"{row['after_ms']:7.3f} ms/document, {row['ratio']}x faster "
                  f"(ring built once in {row['ring_s']} s)")
    print(json.dumps({"demo_packing": results}))


if __name__ == "__main__":
    main()
