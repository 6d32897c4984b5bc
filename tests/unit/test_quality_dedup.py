"""MinHash internals and the dedup steps on small, hand-made corpora (no model, no LLM)."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import numpy as np
import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.quality.minhash import MinHasher, find_near_duplicates, optimal_bands
from synthloom.quality.text import fold_text, fold_tokens
from tests.support.runs import read_jsonl

WORDS = ["river", "stone", "cloud", "maple", "engine", "lantern", "harbor", "copper", "meadow",
         "violet", "signal", "canyon", "orchard", "pepper", "tunnel", "glacier", "saddle",
         "ribbon", "quartz", "falcon"]


def essay(rng: random.Random, n: int = 120) -> str:
    return " ".join(rng.choice(WORDS) + str(rng.randrange(50)) for _ in range(n))


def jaccard(a: str, b: str, n: int = 5) -> float:
    def grams(text: str) -> set[tuple[str, ...]]:
        tokens = fold_tokens(text)
        return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}

    ga, gb = grams(a), grams(b)
    return len(ga & gb) / len(ga | gb)


def edit(rng: random.Random, text: str, rate: float) -> str:
    tokens = text.split()
    for i in range(len(tokens)):
        if rng.random() < rate:
            tokens[i] = "edited" + str(rng.randrange(1000))
    return " ".join(tokens)


def test_signatures_estimate_jaccard() -> None:
    rng = random.Random(3)
    hasher = MinHasher(num_perm=256, ngram=5)
    errors = []
    for rate in (0.0, 0.02, 0.05, 0.1, 0.2):
        a = essay(rng)
        b = edit(rng, a, rate)
        sigs = hasher.signatures([a, b])
        estimate = float((sigs[0] == sigs[1]).mean())
        errors.append(abs(estimate - jaccard(a, b)))
    # Standard error of a 256-permutation estimate is <= 0.032.
    assert max(errors) < 0.1 and float(np.mean(errors)) < 0.05


def test_batching_does_not_change_signatures() -> None:
    rng = random.Random(5)
    texts = [essay(rng, rng.randrange(1, 400)) for _ in range(30)] + ["", "one"]
    together = MinHasher().signatures(texts)
    alone = np.vstack([MinHasher().signatures([t]) for t in texts])
    assert np.array_equal(together, alone)
    assert (together[-2] == 0xFFFFFFFF).all()  # no words: no shingles


def test_optimal_bands_matches_datasketch() -> None:
    lsh = pytest.importorskip("datasketch.lsh", reason="datasketch is in synthloom[quality]")
    for threshold, perms in [(0.5, 128), (0.7, 128), (0.85, 256), (0.9, 64)]:
        assert optimal_bands(threshold, perms) == lsh._optimal_param(threshold, perms, 0.5, 0.5)


def test_find_near_duplicates_order_seeds_and_empties() -> None:
    rng = random.Random(7)
    base = [essay(rng) for _ in range(4)]
    texts = [base[0], base[1], edit(rng, base[0], 0.01), "", "", base[2],
             edit(rng, base[3], 0.01)]
    hasher = MinHasher()
    sigs = hasher.signatures([base[3], *texts])  # base[3] is a seed (accepted earlier)
    out = find_near_duplicates(sigs, hasher.shingle_counts > 0, 0.7, seeded=1)
    assert len(out) == len(texts)
    assert out[0] is None and out[1] is None and out[5] is None
    assert out[2] is not None and out[2][0] == 1 and out[2][1] > 0.8  # index 1 = texts[0]
    assert out[3] is None and out[4] is None  # empty texts are never near-duplicates
    assert out[6] is not None and out[6][0] == 0  # the seed


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_dedup(tmp_path: Path, name: str, sets: dict[str, str]) -> tuple[dict, Path]:
    out = tmp_path / name
    summary = asyncio.run(run_recipe("dedup", out, RunOptions(overrides=sets)))
    return summary.to_json(), out


def test_dedup_recipe_needs_no_model_and_names_duplicates(tmp_path: Path) -> None:
    rng = random.Random(11)
    originals = [essay(rng) for _ in range(12)]
    rows = [{"text": t, "n": i} for i, t in enumerate(originals)]
    rows.append({"text": originals[2].upper().replace(" ", "  ") + " !", "n": 100})  # exact
    rows.append({"text": edit(rng, originals[5], 0.02), "n": 101})  # near
    rows.append({"text": edit(rng, originals[7], 0.5), "n": 102})  # too different: kept
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    summary, out = run_dedup(tmp_path, "run1", {"input": str(source)})
    assert summary["llm_calls"] == 0 and summary["records"] == 13
    kept = read_jsonl(out / "data.jsonl")
    assert sorted(r["n"] for r in kept) == [*range(12), 102]
    ids = {r["n"]: r["_meta"]["id"] for r in kept}
    dropped = {d["record"]["n"]: d for d in read_jsonl(out / "dropped.jsonl")}
    assert set(dropped) == {100, 101}
    assert dropped[100]["step"] == "exact" and ids[2] in dropped[100]["reason"]
    assert dropped[101]["step"] == "near" and ids[5] in dropped[101]["reason"]
    assert "jaccard≈0.9" in dropped[101]["reason"] or "jaccard≈0.8" in dropped[101]["reason"]
    semantic = next(s for s in summary["steps"] if s["name"] == "semantic")
    assert semantic["in"] == semantic["kept"] == 13  # off by default: passes through

    # Incremental: a new batch against the first run's output.
    new = [{"text": edit(rng, originals[0], 0.01), "n": 200}, {"text": essay(rng), "n": 201},
           {"text": originals[3], "n": 202}]
    source2 = write_jsonl(tmp_path / "in2.jsonl", new)
    summary2, out2 = run_dedup(tmp_path, "run2", {"input": str(source2),
                                                  "against": str(out / "data.jsonl")})
    assert [r["n"] for r in read_jsonl(out2 / "data.jsonl")] == [201]
    reasons = {d["record"]["n"]: d["reason"] for d in read_jsonl(out2 / "dropped.jsonl")}
    assert ids[0] in reasons[200] and "from data.jsonl" in reasons[200]
    assert ids[3] in reasons[202] and "exact duplicate" in reasons[202]


def test_dedup_steps_on_another_column_and_missing_values(tmp_path: Path) -> None:
    rng = random.Random(13)
    a, b = essay(rng), essay(rng)
    rows = [{"q": a}, {"q": b}, {"other": "no q here"}, {"q": edit(rng, a, 0.01)}]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    recipe = Recipe.from_dict({
        "name": "d",
        "sources": [{"name": "rows", "type": "jsonl", "path": str(source)}],
        "steps": [{"name": "near", "type": "dedup_minhash", "column": "q", "threshold": 0.8,
                   "ngram": 3, "num_perm": 64}],
    })
    summary = asyncio.run(run_recipe(recipe, tmp_path / "out", RunOptions())).to_json()
    near = next(s for s in summary["steps"] if s["name"] == "near")
    assert (near["in"], near["kept"], near["failed"], near["dropped"]) == (4, 2, 1, 1)
    failed = read_jsonl(tmp_path / "out" / "failed.jsonl")
    assert failed[0]["error_class"] == "KeyError" and "'q'" in failed[0]["message"]


def test_normalize_for_exact_hash() -> None:
    assert fold_text("  Hello,   WORLD!\n") == fold_text("hello world") == "hello world"
    assert fold_text("Ｆｕｌｌｗｉｄｔｈ") == "fullwidth"


def test_semantic_dedup_neighbours_in_blocks_and_from_usearch_agree() -> None:
    """Blockwise exact search (blocks smaller than the input) equals the all-pairs one, and
    the vectorised usearch path finds the same duplicates (approximately) with exact cosines."""
    from synthloom.quality.vectors import _block_rows, greedy_duplicates, top_k

    rng = np.random.default_rng(3)
    base = rng.normal(size=(2500, 48))
    copies = base[rng.choice(2500, size=400)] + rng.normal(scale=0.02, size=(400, 48))
    vectors = np.vstack([base, copies, base[:30]])  # + exact copies
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    assert _block_rows(len(vectors)) < len(vectors)  # several blocks
    idx, sims = top_k(vectors, 6, "exact")
    full = vectors @ vectors.T
    np.fill_diagonal(full, -np.inf)
    assert np.allclose(sims, -np.sort(-full, axis=1)[:, :6], atol=1e-5)
    exact = greedy_duplicates(idx, sims, 0.95)
    assert sum(m is not None for m in exact) == 430
    pytest.importorskip("usearch", reason="usearch is in synthloom[embeddings]")
    a_idx, a_sims = top_k(vectors, 6, "usearch")
    rows = np.arange(len(vectors))[:, None]
    ok = a_idx >= 0
    assert not (a_idx == rows).any()  # never oneself
    assert np.allclose(a_sims[ok], np.sum(vectors[rows.repeat(6, 1)[ok]] * vectors[a_idx[ok]],
                                          axis=1), atol=1e-6)  # exact cosines, not f16 ones
    approx = greedy_duplicates(a_idx, a_sims, 0.95)
    found = [i for i, m in enumerate(approx) if m is not None]
    # Approximate: (nearly) every duplicate found, and never a false one.
    assert len(found) >= 0.97 * 430
    assert all(exact[i] is not None and approx[i][1] >= 0.95 for i in found)  # type: ignore[index]
