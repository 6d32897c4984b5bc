"""TarGEN with the scripted test backend (ScriptedTestBackend, a test double): task files,
contexts -> seeds -> one instance per label -> self-correction (relabel or drop), the drop
reasons, accounting and a call-free rerun."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.methods.targen.steps import parse_task
from tests.support.runs import read_jsonl, step_closes
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text


def targen_responder(request, seed) -> str:
    text = last_user_text(request)
    if "settings or domains" in text:
        return json.dumps({"items": ["restaurants", "Restaurants!", "electronics"]})
    if "concrete, different subjects" in text:
        context = re.search(r"^Setting: (.+)$", text, re.MULTILINE).group(1)
        return json.dumps({"items": [f"{context} subject A", f"{context} subject B"]})
    if "whose correct label is" in text:
        label = re.search(r'correct label is "(\w+)"', text).group(1)
        subject = re.search(r"^Subject: (.+)$", text, re.MULTILINE).group(1)
        if label == "negative" and subject.endswith("B"):
            return json.dumps({"text": " "})  # blank after stripping: marked, then dropped
        return json.dumps({"text": f"A {label} review about {subject}."})
    if "decide which label is correct" in text:
        instance = re.search(r"^text: (.+)$", text, re.MULTILINE).group(1)
        if "electronics subject A" in instance and "positive" in instance:
            return json.dumps({"label": "negative"})  # the self-check disagrees
        return json.dumps({"label": "positive" if "positive" in instance else "negative"})
    raise AssertionError(text)


def run(recipe: Recipe, out: Path, backend: ScriptedTestBackend) -> dict:
    return asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend))).to_json()


def steps_of(summary: dict) -> dict[str, dict]:
    return {s["name"]: s for s in summary["steps"]}


def test_parse_task_validates() -> None:
    task = parse_task({"name": "t", "description": "Decide.", "labels": ["yes", "no"]}, "f.yaml")
    assert task["fields"] == [{"name": "text", "description": ""}]
    assert [label["name"] for label in task["labels"]] == ["yes", "no"]
    with pytest.raises(ValueError, match="at least two labels"):
        parse_task({"description": "d", "labels": ["only"]}, "f.yaml")
    with pytest.raises(ValueError, match="'description' is missing"):
        parse_task({"labels": ["a", "b"]}, "f.yaml")
    with pytest.raises(ValueError, match="reserved"):
        parse_task({"description": "d", "labels": ["a", "b"], "fields": ["label"]}, "f.yaml")


def test_targen_generates_per_label_and_self_corrects(tmp_path: Path) -> None:
    params = {"contexts": "3", "seeds_per_context": "2"}
    backend = ScriptedTestBackend(targen_responder)
    out = tmp_path / "out"
    summary = run(Recipe.load("targen", params), out, backend)
    steps = steps_of(summary)
    assert all(step_closes(s) for s in steps.values()), steps
    assert steps["contexts"]["out"] == 3 and steps["distinct_contexts"]["dropped"] == 1
    assert steps["seeds"]["in"] == 2 and steps["seeds"]["out"] == 4
    assert steps["instances"]["in"] == 4 and steps["instances"]["out"] == 8  # 2 labels each
    assert steps["complete_instances"]["dropped"] == 2
    assert steps["self_correct"]["in"] == 6 and steps["self_correct"]["out"] == 6
    assert summary["llm_calls"] == backend.calls == 1 + 2 + 8 + 6

    kept = read_jsonl(out / "data.jsonl")
    for record in kept:
        assert {"task", "context", "seed", "label", "text", "corrected", "original_label"} <= set(
            record)
        assert record["task"] == "review_sentiment"
    [fixed] = [r for r in kept if r["corrected"]]
    assert fixed["original_label"] == "positive" and fixed["label"] == "negative"
    assert fixed["seed"] == "electronics subject A"
    assert all(r["label"] == r["original_label"] for r in kept if not r["corrected"])
    reasons = sorted(d["reason"] for d in read_jsonl(out / "dropped.jsonl"))
    assert reasons == [
        "context 1: repeats an earlier item of the list ('Restaurants!')",
        "label 'negative': empty field(s) ['text']",
        "label 'negative': empty field(s) ['text']",
    ]
    again = ScriptedTestBackend(targen_responder)
    run(Recipe.load("targen", params), out, again)
    assert again.calls == 0 and read_jsonl(out / "data.jsonl") == kept

    # on_mismatch=drop: the disagreement is a drop naming both labels; only that step reruns.
    dropper = ScriptedTestBackend(targen_responder)
    summary = run(Recipe.load("targen", {**params, "on_mismatch": "drop"}), out, dropper)
    # Its config changed, so its item seeds did: 6 new self-check calls, nothing upstream.
    assert dropper.calls == 6 and steps_of(summary)["instances"]["llm_calls"] == 0
    correct = steps_of(summary)["self_correct"]
    assert correct["out"] == 5 and correct["dropped"] == 1
    assert any(d["reason"] == "self-correction: generated as 'positive' but the check says "
               "'negative'" for d in read_jsonl(out / "dropped.jsonl"))


def test_task_files_nli_and_broken(tmp_path: Path) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "bad.yaml").write_text("description: no labels here\n")
    (folder / "ok.json").write_text(json.dumps({
        "name": "nli", "description": "Does the premise entail the hypothesis?",
        "fields": {"premise": "a fact", "hypothesis": "a claim"},
        "labels": {"entailment": "follows", "contradiction": "cannot both hold"}}))

    def responder(request, seed) -> str:
        text = last_user_text(request)
        if "settings or domains" in text:
            return json.dumps({"items": ["weather"]})
        if "concrete, different subjects" in text:
            return json.dumps({"items": ["rain"]})
        if "whose correct label is" in text:
            return json.dumps({"premise": "It rains.", "hypothesis": "The street is wet."})
        return json.dumps({"label": "entailment"})

    backend = ScriptedTestBackend(responder)
    out = tmp_path / "out"
    summary = run(Recipe.load("targen", {"task": str(folder), "contexts": "1",
                                         "seeds_per_context": "1"}), out, backend)
    tasks = steps_of(summary)["tasks"]
    assert tasks["in"] == 2 and tasks["out"] == 1 and tasks["failed"] == 1
    [failure] = read_jsonl(out / "failed.jsonl")
    assert "bad.yaml" in failure["message"] and "labels" in failure["message"]
    kept = read_jsonl(out / "data.jsonl")
    assert [(r["label"], r["corrected"]) for r in kept] == [("entailment", False),
                                                            ("entailment", True)]
    assert kept[1]["original_label"] == "contradiction"
    assert kept[0]["premise"] == "It rains." and kept[0]["hypothesis"] == "The street is wet."
