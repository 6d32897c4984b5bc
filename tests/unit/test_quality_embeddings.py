"""The embeddings layer against an httpx MockTransport (a test double for an endpoint), the
disk cache, and the neighbour / community helpers on synthetic vectors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from synthloom.core.errors import BackendError, SynthloomError
from synthloom.llm.embeddings import (
    CachedEmbedder,
    EmbedderConfig,
    OpenAIEmbedder,
    resolve_embedder,
)
from synthloom.quality.vectors import communities, greedy_duplicates, top_k


class FakeEndpoint:
    """Answers /v1/embeddings with a vector derived from each text; can fail first."""

    def __init__(self, fail_first: int = 0, status: int = 503) -> None:
        self.requests: list[dict] = []
        self.fail_first = fail_first
        self.status = status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        if self.fail_first:
            self.fail_first -= 1
            return httpx.Response(self.status, text="busy")
        data = [{"index": i, "embedding": [len(t), t.count("a") + 1.0, 3.0]}
                for i, t in enumerate(body["input"])]
        return httpx.Response(200, json={"data": data[::-1]})  # out of order on purpose


def embedder(endpoint: FakeEndpoint, batch_size: int = 2) -> OpenAIEmbedder:
    return OpenAIEmbedder("http://embed.test/v1", "e5", batch_size=batch_size,
                          transport=httpx.MockTransport(endpoint), retries=2)


def test_openai_embedder_batches_orders_and_normalises() -> None:
    endpoint = FakeEndpoint()
    texts = ["a", "banana", "cat", "dog", "aardvark"]
    vectors = asyncio.run(embedder(endpoint).embed(texts))
    assert [len(r["input"]) for r in endpoint.requests] == [2, 2, 1]
    assert endpoint.requests[0]["model"] == "e5"
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    expected = np.array([[len(t), t.count("a") + 1.0, 3.0] for t in texts])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(vectors, expected, atol=1e-6)


def test_openai_embedder_retries_transient_and_reports_permanent() -> None:
    endpoint = FakeEndpoint(fail_first=1)
    assert asyncio.run(embedder(endpoint).embed(["x"])).shape == (1, 3)
    assert len(endpoint.requests) == 2
    with pytest.raises(BackendError, match="HTTP 400"):
        asyncio.run(embedder(FakeEndpoint(fail_first=5, status=400)).embed(["x"]))


def test_cache_serves_repeats_without_calls(tmp_path: Path) -> None:
    endpoint = FakeEndpoint()
    cached = CachedEmbedder(embedder(endpoint, batch_size=8), tmp_path / "e.db")
    first = asyncio.run(cached.embed(["a", "b", "a"]))
    assert len(endpoint.requests) == 1 and endpoint.requests[0]["input"] == ["a", "b"]
    again = CachedEmbedder(embedder(endpoint, batch_size=8), tmp_path / "e.db")
    second = asyncio.run(again.embed(["b", "a", "c"]))
    assert endpoint.requests[-1]["input"] == ["c"] and again.hits == 2
    assert np.allclose(second[0], first[1]) and np.allclose(second[1], first[0])


def test_embedder_specs() -> None:
    assert EmbedderConfig.model_validate("openai:http://x/v1").spec == "openai:http://x/v1"
    with pytest.raises(SynthloomError, match="unknown embedder"):
        resolve_embedder("bert")
    with pytest.raises(SynthloomError, match="base URL"):
        resolve_embedder("openai:localhost")


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_top_k_exact_and_usearch_agree() -> None:
    pytest.importorskip("usearch", reason="usearch is in synthloom[embeddings]")
    vectors = unit(np.random.default_rng(0).normal(size=(300, 24)))
    idx_e, sims_e = top_k(vectors, 5, "exact")
    idx_u, sims_u = top_k(vectors, 5, "usearch")
    assert (idx_e[:, 0] == idx_u[:, 0]).mean() > 0.95
    assert np.allclose(sims_e[:, 0], np.sum(vectors * vectors[idx_e[:, 0]], axis=1), atol=1e-5)
    same = idx_e[:, 0] == idx_u[:, 0]
    assert np.allclose(sims_e[same, 0], sims_u[same, 0], atol=1e-3)
    assert not (idx_e == np.arange(300)[:, None]).any()  # never oneself


def test_greedy_duplicates_keeps_first_and_points_at_kept() -> None:
    base = unit(np.eye(4)[:3] + 0.0)
    vectors = unit(np.vstack([base, base[0] + 0.01, base[1] + 0.01, base[0] + 0.02]))
    idx, sims = top_k(vectors, 4, "exact")
    out = greedy_duplicates(idx, sims, 0.99, seeded=1)
    assert out[0] is None and out[1] is None
    assert out[2] is not None and out[2][0] == 0  # matches the seed
    assert out[3] is not None and out[3][0] == 1 and out[4] is not None and out[4][0] == 0


def test_communities_match_sentence_transformers() -> None:
    pytest.importorskip("torch", reason="the reference implementation needs torch")
    util = pytest.importorskip("sentence_transformers.util")
    import torch

    rng = np.random.default_rng(4)
    centres = unit(rng.normal(size=(6, 32)))
    points = unit(np.vstack([c + rng.normal(scale=0.04, size=(n, 32))
                             for c, n in zip(centres, [1, 2, 3, 5, 8, 1], strict=True)]))
    ours = communities(points, threshold=0.8, min_size=2)
    theirs = util.community_detection(torch.from_numpy(points), threshold=0.8,
                                      min_community_size=2)
    assert [sorted(c) for c in ours] == [sorted(c) for c in theirs]
    assert [c[0] for c in ours] == [c[0] for c in theirs]  # same centres
    assert [len(c) for c in ours][:3] == [8, 5, 3]


def test_hashing_embedder_runs_large_inputs_off_the_event_loop() -> None:
    """Thousands of texts are encoded in a worker thread (same vectors as inline encoding)."""
    import threading

    from synthloom.llm.embeddings import INLINE_HASHING_ROWS, HashingEmbedder

    embedder = HashingEmbedder(dims=64)
    threads: set[int] = set()
    row = embedder._row

    def spying_row(text: str) -> np.ndarray:
        threads.add(threading.get_ident())
        return row(text)

    embedder._row = spying_row  # type: ignore[method-assign]
    texts = [f"text number {i} about topic {i % 7}" for i in range(INLINE_HASHING_ROWS + 1)]

    async def main() -> tuple[np.ndarray, int]:
        return await embedder.embed(texts), threading.get_ident()

    vectors, loop_thread = asyncio.run(main())
    assert threads and loop_thread not in threads
    inline = asyncio.run(embedder.embed(texts[:3]))
    np.testing.assert_array_equal(inline, vectors[:3])
