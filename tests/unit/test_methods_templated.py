"""TemplatedStep: template loading, fingerprint shape, and the request it builds.

No model is called: requests are built and checked, and ``ask`` goes through a stub context
(the recipes using the mixin run on the scripted test backend in their own test files).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.steps import MapStep, StepConfig
from synthloom.llm.types import LLMResponse, Usage
from synthloom.prompting.templated import TemplatedStep, parsed_object


class TwoConfig(StepConfig):
    template: str = "main.jinja"
    judge_template: str = "judge.jinja"
    temperature: float = 0.3
    max_tokens: int | None = 64


class Two(TemplatedStep, MapStep):
    type_name = "test_two_templates"
    Config = TwoConfig
    config: TwoConfig
    template_fields = ("template", "judge_template")
    template_keys = {"judge_template": "judge"}

    def process(self, record: dict[str, Any], ctx: ItemContext) -> Any:
        return {}


class JudgeOnly(Two):
    def active_template_fields(self) -> tuple[str, ...]:
        return ()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "main.jinja").write_text(
        "{% block system %}Be brief.{% endblock %}{% block user %}Q: {{ q }}{% endblock %}")
    (tmp_path / "judge.jinja").write_text("Judge {{ a }}")
    return tmp_path


def run_ctx(folder: Path) -> RunContext:
    return RunContext(run_dir=folder, seed=7, recipe_dir=folder)


def test_fingerprint_keeps_the_field_names_or_the_declared_keys(folder: Path) -> None:
    step = Two(name="s")
    step.setup(run_ctx(folder))
    extra = step.extra_fingerprint(run_ctx(folder))
    assert set(extra) == {"template", "judge"}
    assert extra["template"] == step.template().hash != extra["judge"]
    # A changed template changes the fingerprint (the cache is not reused).
    before = step.fingerprint(run_ctx(folder))
    (folder / "judge.jinja").write_text("Judge {{ a }} strictly")
    step.setup(run_ctx(folder))
    assert step.fingerprint(run_ctx(folder)) != before


def test_no_active_template_means_no_fingerprint_part(folder: Path) -> None:
    step = JudgeOnly(name="s")
    step.setup(run_ctx(folder))
    assert step.extra_fingerprint(run_ctx(folder)) is None and not step.has_template()
    with pytest.raises(RuntimeError, match="not loaded"):
        step.template()


def test_request_defaults_from_config_and_seed_offsets(folder: Path) -> None:
    step = Two(name="s")
    step.setup(run_ctx(folder))
    ictx = ItemContext(run=run_ctx(folder), item_key="k", seed=100)
    request = step.request(ictx, {"q": "why?"}, schema={"type": "object"}, seed_offset=2)
    assert request.messages == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Q: why?"}]
    params = request.params
    assert (params.temperature, params.max_tokens, params.seed, params.top_p) == (0.3, 64, 102,
                                                                                   1.0)
    assert request.json_schema == {"type": "object"} and request.tags == {"step": "s"}
    judge = step.request(ictx, {"a": 1}, template="judge_template", seed=5, temperature=0.0,
                         raw_prompt=True, tags={"round": 1})
    assert judge.prompt == "Judge 1" and judge.messages is None
    assert (judge.params.seed, judge.params.temperature) == (5, 0.0)
    assert judge.tags == {"step": "s", "round": 1}
    given = step.request(ictx, {}, messages=[{"role": "user", "content": "hi"}], n=3)
    assert given.messages == [{"role": "user", "content": "hi"}] and given.n == 3


def test_missing_max_tokens_is_an_error_not_a_none(folder: Path) -> None:
    step = Two(config=TwoConfig(name="s", max_tokens=None))
    step.setup(run_ctx(folder))
    ictx = ItemContext(run=run_ctx(folder), item_key="k", seed=0)
    with pytest.raises(TypeError, match="max_tokens"):
        step.request(ictx, {"q": "x"})
    assert step.request(ictx, {"q": "x"}, max_tokens=9).params.max_tokens == 9


def test_ask_and_output_carry_the_provenance(folder: Path) -> None:
    step = Two(name="s")
    step.setup(run_ctx(folder))
    reply = LLMResponse(text="ok", parsed=["not", "a", "dict"], usage=Usage(3, 4),
                        finish_reason="stop", model="m", sample_index=0)

    class Stub(ItemContext):
        async def generate(self, request: Any) -> list[Any]:
            self.sent = request
            return [reply]

    ictx = Stub(run=run_ctx(folder), item_key="k", seed=1)
    response = asyncio.run(step.ask(ictx, {"q": "x"}))
    assert response is reply and ictx.sent.params.seed == 1
    assert parsed_object(response) == {}
    out = step.output(response, {"a": 1}, template="judge_template", sample_index=4)
    assert (out.sample_index, out.model, out.template_hash) == (
        4, "m", step.template("judge_template").hash)
    assert out.usage == {"prompt_tokens": 3, "completion_tokens": 4}
    assert out.meta == {"finish_reason": "stop"}
    assert step.output(response, {}, meta={}, replace=True).meta == {}


def test_output_keeps_a_reasoning_models_think_text() -> None:
    """Every templated step keeps ``<think>`` text as ``<first column>_reasoning`` (the column
    exports read with ``--reasoning``); a step that names its own is left alone."""
    from synthloom.prompting.templated import with_reasoning

    thought = LLMResponse(text="42", reasoning="6 times 7", model="m")
    plain = LLMResponse(text="42", model="m")
    assert with_reasoning({"answer": "42", "n": 1}, thought) == {
        "answer": "42", "n": 1, "answer_reasoning": "6 times 7"}
    assert with_reasoning({"answer": "42"}, plain) == {"answer": "42"}
    own = {"rationale": "x", "rationale_reasoning": "mine"}
    assert with_reasoning(own, thought) == own
