"""The numpy-only hashing embedder and the 'auto' spec (no model behind either test)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from synthloom.llm import embeddings
from synthloom.llm.embeddings import HashingEmbedder, resolve_embedder


def test_hashing_vectors_see_shared_wording() -> None:
    vectors = asyncio.run(HashingEmbedder().embed([
        "how do I feed a sourdough starter", "how should I feed my sourdough starter",
        "write a SQL left join of customers and orders"]))
    assert vectors.shape == (3, 2048)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > 0.4 > sims[0, 2]


def test_auto_falls_back_to_hashing_without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embeddings, "embeddings_extra_installed", lambda: False)
    with pytest.warns(UserWarning, match="embeddings extra is not installed"):
        assert isinstance(resolve_embedder("auto"), HashingEmbedder)
    assert resolve_embedder("hashing:512").dims == 512
