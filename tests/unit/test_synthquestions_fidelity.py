"""SynthQuestions fidelity to the authors' code (github.com/Ignoramus0817/SynthQuestions),
issue 20 items 5, 7, 8, 10, 11 and 13, with the ScriptedTestBackend (a test double) and the
scripted responder of test_synthquestions_steps.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.context import ItemContext, RunContext
from synthloom.core.notes import read_notes, run_notes, set_note
from synthloom.core.recipe import Recipe
from synthloom.core.records import ItemResult, make_record
from synthloom.llm import embeddings
from synthloom.llm.client import LLMClient
from synthloom.llm.types import LLMRequest
from synthloom.methods.common.seeds import SeedInstruction
from synthloom.methods.synthquestions.refill import SelectRanked, TakeFirst
from synthloom.methods.synthquestions.sample import SampleRecords
from synthloom.quality.topics import SelectPerTopic
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text
from tests.unit.test_synthquestions_steps import scripted

ROOT = Path(__file__).resolve().parents[2]
#: The authors' own example keyword (src/prompts.py, KEYWORD_SYSTEM): 61 characters.
AUTHORS_KEYWORD = "Kinetics of neurotensin gene expression in the developing gut"


def step_of(recipe: Recipe, name: str) -> Any:
    return next(n for n in recipe.nodes if n.name == name)


def run_step(step: Any, record: dict, backend: ScriptedTestBackend, tmp_path: Path) -> ItemResult:
    run = RunContext(run_dir=tmp_path, llm=LLMClient(backend))
    step.setup(run)
    ctx = ItemContext(run=run, item_key="k", seed=0)
    return step.to_result(asyncio.run(step.process(record, ctx)))


# --- item 5: keyword schema caps, the intent in the attribution prompt ----------------------


class LlamaCppScripted(ScriptedTestBackend):
    kind = "llamacpp"


def test_intent_keeps_a_title_whole_and_caps_only_for_llamacpp(tmp_path: Path) -> None:
    schemas: list[dict | None] = []

    def reply(request: LLMRequest, seed: int | None) -> str:
        schemas.append(request.json_schema)
        return json.dumps({"intent": "The user looks for applications of a PubMed article.",
                           "keywords": ["application", "PubMed", AUTHORS_KEYWORD]})

    intent = step_of(Recipe.load("synthquestions"), "intent")
    result = run_step(intent, {"instruction": "Generate questions this article answers."},
                      ScriptedTestBackend(reply), tmp_path)
    assert result.outputs[0].columns["keywords"][2] == AUTHORS_KEYWORD
    assert "maxLength" not in json.dumps(schemas[0]) and "maxItems" not in json.dumps(schemas[0])
    capped = run_step(step_of(Recipe.load("synthquestions"), "intent"),
                      {"instruction": "Generate questions this article answers."},
                      LlamaCppScripted(reply), tmp_path / "llamacpp")
    assert capped.outputs[0].columns["keywords"][2] == AUTHORS_KEYWORD  # 61 < the grammar cap
    assert "maxLength" in json.dumps(schemas[-1])  # the grammar still gets its caps


def test_attribution_shows_the_intent_only_when_asked(tmp_path: Path) -> None:
    prompts: list[str] = []

    def reply(request: LLMRequest, seed: int | None) -> str:
        prompts.append(last_user_text(request))
        return scripted(request, seed)

    record = {"instruction": "How do I revive my starter?", "intent": "INTENT-MARKER",
              "document": "Feed the starter twice a day."}
    for overrides, shown in (({}, False), ({"attribute_with_intent": "true"}, True)):
        step = step_of(Recipe.load("synthquestions", overrides), "attribute")
        result = run_step(step, record, ScriptedTestBackend(reply), tmp_path)
        assert result.outputs[0].columns["scene"]
        assert ("INTENT-MARKER" in prompts[-1]) is shown
        assert ("intent" in step.reads()) is True  # the column may change the prompt
        assert "with_intent" not in step.reads()  # a recipe setting, not a column


# --- item 10: seed shapes --------------------------------------------------------------------


def normalise(row: dict) -> ItemResult:
    step = SeedInstruction(name="seeds")
    return step.to_result(step.process(row, None))  # type: ignore[arg-type]


def test_alpaca_and_dolly_rows_keep_their_input(shared_data: Path) -> None:
    alpaca = normalise({"instruction": "Summarise this paragraph in one sentence.",
                        "input": "The mitochondrion is the powerhouse of the cell.",
                        "output": "..."})
    assert alpaca.outputs[0].columns["instruction"] == (
        "Summarise this paragraph in one sentence.\n\n"
        "The mitochondrion is the powerhouse of the cell.")
    dolly = normalise({"instruction": "When was the tower finished?", "category": "closed_qa",
                       "context": "The Eiffel Tower was completed in 1889.", "response": "1889"})
    assert dolly.outputs[0].columns["instruction"].endswith("completed in 1889.")
    empty = normalise({"instruction": "Name three primary colours.", "input": ""})
    assert empty.outputs[0].columns["instruction"] == "Name three primary colours."
    # The real Self-Instruct files keep their instances[0].input as before.
    path = shared_data / "seed_instructions" / "self_instruct_user_oriented_instructions.jsonl"
    row = json.loads(path.read_text().splitlines()[0])
    text = normalise(row).outputs[0].columns["instruction"]
    assert text.startswith(row["instruction"]) and row["instances"][0]["input"] in text


def test_openai_content_parts_are_text_not_a_repr() -> None:
    parts = [{"type": "text", "text": "What is in this picture of my garden?"},
             {"type": "image_url", "image_url": {"url": "https://example.org/g.png"}},
             {"type": "text", "text": "Which plants need more sun?"}]
    result = normalise({"messages": [{"role": "system", "content": "be brief"},
                                     {"role": "user", "content": parts}]})
    assert result.outputs[0].columns["instruction"] == (
        "What is in this picture of my garden?\n\nWhich plants need more sun?")
    column = normalise({"prompt": [{"type": "text", "text": "Plan a three day trip to Kyoto"}]})
    assert column.outputs[0].columns["instruction"] == "Plan a three day trip to Kyoto"


def test_english_prompts_quoting_other_scripts_are_kept(shared_data: Path) -> None:
    quoted = ("Translate this proverb into English and explain it: "
              "«Тише едешь — дальше будешь» and 七転び八起き")
    assert normalise({"text": quoted}).outputs[0].columns["instruction"] == quoted
    # The real OASST prompts: none dropped for its script by this step (filter_language
    # decides the language later in the recipe).
    path = shared_data / "seed_instructions" / "oasst_prompt_lottery_en_250_text.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    drops = [normalise({"text": r}).dropped for r in rows]
    assert not [d for d in drops if d and "English" in d]
    recipe = Recipe.load("synthquestions")
    assert step_of(recipe, "seeds_english").type_name == "filter_language"


# --- item 7: refill from the next-best candidates ----------------------------------------------


def topic_records(n: int, topics: int = 3) -> list[dict]:
    return [make_record({"instruction": f"q{i}", "topic": i % topics,
                         "scores": {"total": (i * 7) % 5 if i % 11 else None}}, step="t")
            for i in range(n)]


def test_ranked_selection_orders_as_select_per_topic_keeps() -> None:
    records = topic_records(40)
    ranked = SelectRanked(name="s", score_column="scores.total", target=10, overselect=1.5)
    order = ranked.order(records)
    for k in (1, 4, 10, 15, 40):
        base = SelectPerTopic(name="s", score_column="scores.total", target=k).select(records)
        assert {i for i, r in enumerate(base) if r.outputs} == set(order[:k])
    results = ranked.select(records)
    kept = {r.outputs[0].columns["selection_rank"]: i for i, r in enumerate(results) if r.outputs}
    assert sorted(kept) == list(range(15)) and [kept[p] for p in range(15)] == order[:15]
    assert all("not selected" in r.dropped for r in results if not r.outputs)


def test_take_first_keeps_the_best_target_survivors(tmp_path: Path) -> None:
    survivors = [make_record({"instruction": f"q{r}", "selection_rank": r}, step="x")
                 for r in (4, 1, 7, 3, 6)]  # ranks 0, 2 and 5 lost their response
    step = TakeFirst(name="final", target=3)
    results = asyncio.run(step.process_all(survivors, RunContext(run_dir=tmp_path)))
    assert [bool(r.outputs) for r in results] == [True, True, False, True, False]
    assert "beyond target" in results[2].dropped and read_notes(tmp_path) == {}
    short = TakeFirst(name="final", target=8, candidates="selected")
    ctx = RunContext(run_dir=tmp_path, context={"selected": survivors * 2})
    assert all(r.outputs for r in asyncio.run(short.process_all(survivors, ctx)))
    [note] = run_notes(tmp_path)
    assert "5 final records, 3 short of target 8" in note and "offered 10" in note


LOST = ("A Short History of the Printing Press", "Bicycle Chain Maintenance")


def short_answers(request: LLMRequest, seed: int | None) -> str:
    text = last_user_text(request)
    is_response = "You are a knowledgeable" in json.dumps(request.messages or [])
    if is_response and any(title in text for title in LOST):
        return "Too short."  # dropped by response_ok (min_words 3)
    return scripted(request, seed)


def test_data_holds_target_records_when_responses_are_lost(tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = asyncio.run(run_recipe("synthquestions", out, RunOptions(
        backend=ScriptedTestBackend(short_answers), limit=5,
        overrides={"target": "3"}))).to_json()
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["response_ok"]["dropped"] == 2 and steps["response_ok"]["out"] == 3
    rows = [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines()]
    assert len(rows) == summary["records"] == 3  # was 2: one of the best 3 lost its response
    assert max(r["selection_rank"] for r in rows) >= 3  # refilled from a spare candidate
    assert "notes" not in json.loads((out / "summary.json").read_text())
    # Unreachable: target above every candidate -> all kept, and the summary says why.
    asyncio.run(run_recipe("synthquestions", out, RunOptions(
        backend=ScriptedTestBackend(short_answers), limit=5, overrides={"target": "50"})))
    data = json.loads((out / "summary.json").read_text())
    assert data["records"] == 3
    [note] = data["notes"]
    assert "3 final records, 47 short of target 50" in note and "overselect" in note


# --- item 8: preference pairs for a random sample ------------------------------------------------


def test_sample_is_seeded_stable_and_sized(tmp_path: Path) -> None:
    records = [make_record({"instruction": f"instruction {i}"}, step="x") for i in range(2000)]

    def kept(size: float | int, rows: list[dict], seed: int = 0) -> set[str]:
        results = asyncio.run(SampleRecords(name="s", size=size).process_all(
            rows, RunContext(run_dir=tmp_path, seed=seed)))
        return {r["_meta"]["id"] for r, res in zip(rows, results, strict=True) if res.outputs}

    tenth = kept(0.1, records)
    assert 150 < len(tenth) < 250  # ~10 % of 2000
    assert kept(0.1, list(reversed(records))) == tenth  # input order does not matter
    assert kept(0.1, records[:1000]) == {i for i in tenth if i in kept(1.0, records[:1000])}
    assert kept(0.1, records, seed=1) != tenth  # another run seed, another draw
    assert len(kept(25, records)) == 25 and len(kept(5000, records)) == 2000
    assert kept(1.0, records) == {r["_meta"]["id"] for r in records}


def test_recipe_samples_the_paper_share_before_preference() -> None:
    recipe = Recipe.load("synthquestions")
    sample = step_of(recipe, "preference_sample")
    assert sample.type_name == "sample_records" and sample.config.size == 0.1
    assert recipe.inputs_of(step_of(recipe, "preference")) == "preference_sample"
    assert recipe.inputs_of(sample) == "final"
    assert step_of(Recipe.load("synthquestions", {"preference_sample": "500"}),
                   "preference_sample").config.size == 500


# --- item 11: the lexical embedder fallback is said where users look ----------------------------


def test_embedder_fallback_is_a_run_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(embeddings, "embeddings_extra_installed", lambda: False)
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="lexical hashing"):
        asyncio.run(run_recipe("synthquestions", out, RunOptions(
            backend=ScriptedTestBackend(scripted), limit=3, overrides={"target": "1"})))
    summary = json.loads((out / "summary.json").read_text())
    assert any("lexical hashing" in n for n in summary["notes"])
    from synthloom.cli import _print_summary
    from synthloom.core.accounting import RunSummary
    from synthloom.export.report import build_report

    _print_summary(RunSummary(recipe="synthquestions"), out)
    assert "note:" in capsys.readouterr().out
    assert "lexical hashing" in build_report(out)
    # An explicit local model clears the note; the next run's summary has none.
    embeddings.resolve_embedder("local", out)
    assert "embedder" not in read_notes(out)
    set_note(out, "step:gone", "a note of a step no longer in the recipe")
    assert run_notes(out, ["final"]) == []


def test_readme_names_the_embeddings_extra() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert 'pip install -e ".[embeddings]"' in readme


# --- item 13: the docs compare against the authors' files --------------------------------------


def test_docs_compare_synthquestions_with_the_authors_files() -> None:
    text = (ROOT / "docs" / "recipes.md").read_text(encoding="utf-8")
    start = text.index("Ignoramus0817/SynthQuestions")
    section = text[start - 3000: start + 20000]
    for path in ("src/prompts.py", "src/extract_keywords.py", "src/grounding.py",
                 "src/query_generate.py", "src/score.py"):
        assert path in section, path
    for word in ("Llama-Guard-3-8B", "0.3", "0.8", "851f269", "preference_sample",
                 "overselect"):
        assert word in section, word
    assert "keyword_search.py" not in section


# --- item 9: the recipe can moderate with a Llama Guard model -----------------------------------


def test_recipe_moderation_can_use_a_llama_guard_model() -> None:
    default = step_of(Recipe.load("synthquestions"), "moderate")
    assert default.config.format == "judge" and default.config.model is None
    sets = {"moderation_format": "llama_guard", "moderation_model": "guard"}
    recipe = Recipe.load("synthquestions", sets, models={"guard": "openai:http://127.0.0.1:9/v1"})
    guard = step_of(recipe, "moderate")
    assert guard.config.format == "llama_guard" and guard.config.model == "guard"
