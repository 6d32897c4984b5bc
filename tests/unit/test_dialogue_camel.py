"""CAMEL role-playing with the scripted test backend (a test double, no model): the task
specifier, the two agents' views of the dialogue under the inception prompts, every stop rule
(done token, turn limit, role flip, repetition, user not instructing) and the accounting."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from tests.support.scripted_backend import ScriptedTestBackend


def rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def closes(s: dict) -> bool:
    produced = s["expanded"] if s["kind"] == "expand" else s.get("kept", s["out"])
    return s["in"] == produced + s["failed"] + s["dropped"]


class Agents(ScriptedTestBackend):
    """Plays the specifier, the AI user and the AI assistant, told apart by system message.

    ``user(k)`` and ``assistant(k, instruction)`` script turn k (1-based) of each agent.
    """

    def __init__(self, user: Callable[[int], str],
                 assistant: Callable[[int, str], str] | None = None) -> None:
        super().__init__(self.reply)
        self.user = user
        self.assistant = assistant or (lambda k, instr: f"Solution: done step {k}. Next request.")
        self.seen: dict[str, list[list[dict]]] = {"specify": [], "user": [], "assistant": []}

    def reply(self, request, seed) -> str:
        messages = request.messages
        system = messages[0]["content"]
        if system == "You can make a task more specific.":
            self.seen["specify"].append(messages)
            return 'Specified task: "Write a Python bot that buys when the 50-day average rises."'
        if system.startswith("===== RULES OF USER ====="):
            self.seen["user"].append(messages)
            return self.user(sum(m["role"] == "assistant" for m in messages) + 1)
        assert system.startswith("===== RULES OF ASSISTANT =====")
        self.seen["assistant"].append(messages)
        turn = sum(m["role"] == "assistant" for m in messages) + 1
        return self.assistant(turn, messages[-1]["content"])


def play(tmp_path: Path, backend: Agents, limit: int = 1, **params: str) -> tuple[dict, list, list]:
    recipe = Recipe.load("camel", params)
    out = tmp_path / "out"
    summary = asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend, limit=limit)))
    data = summary.to_json()
    assert all(closes(s) for s in data["steps"])
    roleplay = next(s for s in data["steps"] if s["name"] == "roleplay")
    return roleplay, rows(out / "data.jsonl"), rows(out / "dropped.jsonl")


def instruct_then_done(k: int) -> str:
    return f"Instruction: do step {k}\nInput: None" if k <= 2 else "<CAMEL_TASK_DONE>"


def test_roleplay_until_the_done_token(tmp_path: Path) -> None:
    backend = Agents(instruct_then_done)
    roleplay, [record], _ = play(tmp_path, backend)
    # specifier + 3 user messages (the last one is the done token) + 2 solutions
    assert roleplay["llm_calls"] == 1 + 3 + 2 == backend.calls
    assert record["terminated_by"] == "done_token" and record["turns"] == 2
    assert record["conversations"] == [
        {"from": "human", "value": "Instruction: do step 1\nInput: None"},
        {"from": "gpt", "value": "Solution: done step 1. Next request."},
        {"from": "human", "value": "Instruction: do step 2\nInput: None"},
        {"from": "gpt", "value": "Solution: done step 2. Next request."},
    ]
    assert (record["assistant_role"], record["user_role"]) == ("Python Programmer", "Stock Trader")
    assert record["original_task"] == "Develop a trading bot for the stock market"
    assert record["specified_task"] == \
        "Write a Python bot that buys when the 50-day average rises."
    # The specifier got the paper's prompt; both agents the specified task in their rules.
    specify = backend.seen["specify"][0][1]["content"]
    assert specify.startswith("Here is a task that Python Programmer will help Stock Trader "
                              "to complete: Develop a trading bot for the stock market.")
    assert "in 50 words or less" in specify
    user_view = backend.seen["user"][-1]
    assert "Never forget you are a Stock Trader and I am a Python Programmer" in \
        user_view[0]["content"]
    assert "Here is the task: Write a Python bot" in user_view[0]["content"]
    assert user_view[1] == {"role": "user", "content": "Now start to give me instructions one "
                            "by one. Only reply with Instruction and Input."}
    # The user agent sees its instructions as its own (assistant) turns, solutions as user turns.
    assert [m["role"] for m in user_view[2:]] == ["assistant", "user", "assistant", "user"]
    assistant_view = backend.seen["assistant"][-1]
    assert "Never forget you are a Python Programmer and I am a Stock Trader" in \
        assistant_view[0]["content"]
    assert [m["role"] for m in assistant_view[1:]] == ["user", "assistant", "user"]


def test_turn_limit_and_no_specifier(tmp_path: Path) -> None:
    backend = Agents(lambda k: f"Instruction: step {k}\nInput: None")
    roleplay, [record], _ = play(tmp_path, backend, specify="false", max_turns="2")
    assert record["terminated_by"] == "turn_limit" and record["turns"] == 2
    assert record["specified_task"] == record["original_task"]
    assert not backend.seen["specify"] and roleplay["llm_calls"] == 4


def test_role_flip_stops_and_drops_the_flipped_exchange(tmp_path: Path) -> None:
    def assistant(k: int, instruction: str) -> str:
        return ("Solution: fine. Next request." if k == 1
                else "Instruction: now you write the code\nInput: None")
    _, [record], _ = play(tmp_path, Agents(lambda k: f"Instruction: step {k}\nInput: None",
                                           assistant))
    assert record["terminated_by"] == "role_flip" and record["turns"] == 1
    assert record["conversations"][-1]["value"] == "Solution: fine. Next request."


def test_repeated_message_stops_the_loop(tmp_path: Path) -> None:
    _, [record], _ = play(tmp_path, Agents(lambda k: "Instruction: same again\nInput: None"))
    assert record["terminated_by"] == "repetition" and record["turns"] == 1


def test_user_who_never_instructs(tmp_path: Path) -> None:
    _, [record], _ = play(tmp_path, Agents(lambda k: f"Let us chat, part {k}."))
    # The third message in a row without "Instruction:" ends it (paper: 3 rounds).
    assert record["terminated_by"] == "user_no_instruct" and record["turns"] == 2


def test_dialogue_without_a_complete_exchange_is_dropped(tmp_path: Path) -> None:
    roleplay, kept, dropped = play(tmp_path, Agents(lambda k: "<CAMEL_TASK_DONE>"), limit=2)
    assert kept == [] and roleplay["dropped"] == 2 and roleplay["in"] == 2
    assert [d["reason"] for d in dropped] == \
        ["no complete exchange (terminated_by=done_token)"] * 2


def test_tasks_source_crosses_pairs_and_tasks_and_reports_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text(
        '{"assistant_role": "Chef", "user_role": "Student", "tasks": ["Cook rice", "Bake"]}\n'
        '{"assistant_role": "Chef"}\n'
        '{"assistant_role": "Lawyer", "user_role": "Farmer", "task": "Draft a lease"}\n')
    recipe = Recipe.load("camel", {"tasks": str(path), "max_turns": "1"})
    backend = Agents(instruct_then_done)
    summary = asyncio.run(run_recipe(recipe, tmp_path / "out", RunOptions(backend=backend)))
    source = summary.to_json()["steps"][0]
    assert (source["in"], source["out"], source["failed"]) == (4, 3, 1)
    steps = {s["name"]: s for s in summary.to_json()["steps"]}
    assert steps["roleplay"]["out"] == 3
    # The scripted dialogues are identical, so the dedup step keeps one and names it.
    assert (steps["unique"]["kept"], steps["unique"]["dropped"]) == (1, 2)
    dropped = [d for d in rows(tmp_path / "out" / "dropped.jsonl") if d["step"] == "unique"]
    assert all(d["reason"].startswith("exact duplicate of") for d in dropped)
    tasks = [d["record"]["original_task"] for d in dropped]
    tasks += [r["original_task"] for r in rows(tmp_path / "out" / "data.jsonl")]
    assert sorted(tasks) == ["Bake", "Cook rice", "Draft a lease"]
    [failure] = rows(tmp_path / "out" / "failed.jsonl")
    assert "tasks.jsonl:2" in json.dumps(failure)
