"""MinHash dedup benchmark: synthloom's vectorised MinHash LSH beside datasketch used in the
plainest way, on a labelled set of near-duplicates built from real text.

Data: paragraphs of the HTML pages in ../shared/data/web, grouped into documents of 80-250
words. Originals that already overlap (exact Jaccard >= 0.3 on word 5-grams) are removed, then
some get 1-2 perturbed copies (word substitutions, deletions, insertions, swaps, case and
punctuation noise, at a random edit rate of 0-12%), and everything is shuffled.

Label: a document is a true near-duplicate when its exact Jaccard (word 5-gram sets) with an
earlier document of its group is >= the threshold. Both methods judge documents in order and
index only the kept ones; a dropped document is a positive prediction.

Both are timed from raw text to decisions (tokenising, shingling, hashing, LSH). Prints one JSON
line. ``--quick`` uses 1,500 documents (under 30 s on 2 cores).

    python benchmarks/dedup.py [--quick] [--threshold 0.7] [--num-perm 128]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from synthloom.quality.minhash import MinHasher, find_near_duplicates
from synthloom.quality.text import fold_tokens

WEB = Path(__file__).resolve().parents[2] / "shared" / "data" / "web"
NGRAM = 5


class _Paragraphs(HTMLParser):
    """Text of <p> elements (scripts, styles and navigation left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.out: list[str] = []
        self._depth = 0
        self._buf: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "p":
            self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "p" and self._depth:
            self._depth -= 1
            text = " ".join("".join(self._buf).split())
            if len(text.split()) >= 8:
                self.out.append(text)
            self._buf = []

    def handle_data(self, data: str) -> None:
        if self._depth:
            self._buf.append(data)


def documents(limit: int, rng: random.Random) -> list[str]:
    docs: list[str] = []
    for page in sorted(WEB.rglob("*.html")):
        parser = _Paragraphs()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        current: list[str] = []
        target = rng.randint(80, 250)
        for para in parser.out:
            current.append(para)
            if sum(len(p.split()) for p in current) >= target:
                docs.append(" ".join(current))
                current, target = [], rng.randint(80, 250)
    rng.shuffle(docs)
    return docs[:limit]


def shingle_set(text: str) -> set[str]:
    tokens = fold_tokens(text)
    return {" ".join(tokens[i : i + NGRAM]) for i in range(max(1, len(tokens) - NGRAM + 1))}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def drop_overlapping(docs: list[str], limit: float = 0.3) -> list[str]:
    """Exact check through an inverted index: keep originals sharing < ``limit`` Jaccard."""
    kept: list[set[str]] = []
    texts: list[str] = []
    postings: dict[str, list[int]] = defaultdict(list)
    for doc in docs:
        grams = shingle_set(doc)
        shared: dict[int, int] = defaultdict(int)
        for g in grams:
            for j in postings.get(g, ()):
                shared[j] += 1
        if any(c / (len(grams) + len(kept[j]) - c) >= limit for j, c in shared.items()):
            continue
        for g in grams:
            postings[g].append(len(kept))
        kept.append(grams)
        texts.append(doc)
    return texts


def perturb(text: str, rate: float, rng: random.Random, vocab: list[str]) -> str:
    tokens = text.split()
    out: list[str] = []
    for token in tokens:
        r = rng.random()
        if r < rate * 0.4:
            out.append(rng.choice(vocab))  # substitute
        elif r < rate * 0.7:
            continue  # delete
        elif r < rate * 0.9:
            out.extend([token, rng.choice(vocab)])  # insert
        else:
            out.append(token)
    for _ in range(int(len(out) * rate * 0.1)):  # swap neighbours
        i = rng.randrange(max(1, len(out) - 1))
        out[i : i + 2] = out[i : i + 2][::-1]
    noisy = " ".join(out)
    return noisy.upper() if rng.random() < 0.1 else noisy.replace(".", " .")


def build(n_docs: int, threshold: float, seed: int) -> tuple[list[str], np.ndarray]:
    rng = random.Random(seed)
    originals = drop_overlapping(documents(int(n_docs * 1.2), rng))[: int(n_docs * 0.7)]
    vocab = sorted({w for d in originals[:200] for w in d.split()})
    items: list[tuple[int, str]] = [(g, d) for g, d in enumerate(originals)]
    for g, doc in enumerate(originals):
        if len(items) >= n_docs:
            break
        if rng.random() < 0.6:
            for _ in range(rng.choice([1, 1, 2])):
                items.append((g, perturb(doc, rng.uniform(0.0, 0.12), rng, vocab)))
    rng.shuffle(items)
    items = items[:n_docs]
    sets = [shingle_set(t) for _, t in items]
    seen: dict[int, list[int]] = defaultdict(list)
    label = np.zeros(len(items), dtype=bool)
    for i, (group, _) in enumerate(items):
        label[i] = any(jaccard(sets[i], sets[j]) >= threshold for j in seen[group])
        seen[group].append(i)
    return [t for _, t in items], label


def ours(texts: list[str], threshold: float, num_perm: int) -> np.ndarray:
    hasher = MinHasher(num_perm=num_perm, ngram=NGRAM)
    sigs = hasher.signatures(texts)
    found = find_near_duplicates(sigs, hasher.shingle_counts > 0, threshold)
    return np.array([m is not None for m in found])


def datasketch_plain(texts: list[str], threshold: float, num_perm: int,
                     batch: bool = False) -> np.ndarray:
    """As its README shows: MinHash per document, ``update`` per shingle, MinHashLSH query
    then insert (only kept documents are inserted, as ours)."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    flags = []
    for i, text in enumerate(texts):
        m = MinHash(num_perm=num_perm)
        grams = shingle_set(text)
        if batch:
            m.update_batch([g.encode("utf8") for g in grams])
        else:
            for g in grams:
                m.update(g.encode("utf8"))
        if lsh.query(m):
            flags.append(True)
        else:
            lsh.insert(str(i), m)
            flags.append(False)
    return np.array(flags)


def scores(pred: np.ndarray, label: np.ndarray, seconds: float) -> dict[str, float]:
    tp = int((pred & label).sum())
    fp = int((pred & ~label).sum())
    fn = int((~pred & label).sum())
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return {"docs_per_s": round(len(pred) / seconds, 1), "seconds": round(seconds, 3),
            "precision": round(p, 4), "recall": round(r, 4),
            "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4), "dropped": int(pred.sum())}


def timed(fn, *args, **kw) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    result = fn(*args, **kw)
    return result, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,500 documents (< 30 s)")
    parser.add_argument("--docs", type=int, default=None)
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not WEB.is_dir():
        print(json.dumps({"error": f"{WEB} not found (../shared/data/web is needed)"}))
        return 1
    n_docs = args.docs or (1500 if args.quick else 6000)
    texts, label = build(n_docs, args.threshold, args.seed)
    ours(texts[:50], args.threshold, args.num_perm)  # warm-up: imports, allocations
    pred_ours, t_ours = timed(ours, texts, args.threshold, args.num_perm)
    pred_ds, t_ds = timed(datasketch_plain, texts, args.threshold, args.num_perm)
    pred_dsb, t_dsb = timed(datasketch_plain, texts, args.threshold, args.num_perm, batch=True)
    result = {
        "benchmark": "dedup_minhash", "docs": len(texts), "true_duplicates": int(label.sum()),
        "threshold": args.threshold, "num_perm": args.num_perm, "ngram": NGRAM,
        "synthloom": scores(pred_ours, label, t_ours),
        "datasketch_plain": scores(pred_ds, label, t_ds),
        "datasketch_update_batch": scores(pred_dsb, label, t_dsb),
    }
    result["speedup_vs_plain"] = round(t_ds / t_ours, 2)
    result["speedup_vs_update_batch"] = round(t_dsb / t_ours, 2)
    result["f1_delta_vs_plain"] = round(result["synthloom"]["f1"]
                                        - result["datasketch_plain"]["f1"], 4)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
