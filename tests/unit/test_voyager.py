"""voyager with the scripted test backend (a test double that plays the curriculum, the action
agent, the critic and the skill agent by reading the prompts); every program run is real (the
sandbox, against the crafting world).

Each part of the loop has a test that fails without it: a program that raises is retried with
its error in the next prompt; a success enters the skill library and is retrieved (and loaded
in the sandbox) for a later task; a task that never succeeds goes to the failed list, which the
curriculum sees; the critic decides tasks the world cannot check; a step whose loop raises is
a counted failure and the explorer goes on; every attempt is a trajectory record.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from synthloom.core.recipe import Recipe
from synthloom.llm.types import LLMRequest, PermanentLLMError
from synthloom.methods.voyager import world
from synthloom.methods.voyager.program import parse_reply
from synthloom.methods.voyager.steps import _Explorer, chatlog_summary
from tests.support.runs import assert_closed, read_jsonl, run_scripted, step
from tests.support.scripted_backend import ScriptedTestBackend

MINE_LOG_BAD = "def mine_one_log(bot):\n    mine_block(bot, 'logs', 1)\n"
MINE_LOG = ("def mine_one_log(bot):\n    explore_until(bot, 'log', 20)\n"
            "    mine_block(bot, 'log', 1)\n    bot.chat('mined a log')\n")
# Calls the skill learned before: it exists only if the library is loaded in the sandbox.
TABLE = ("def craft_table(bot):\n    while bot.count('log') < 1:\n        mine_one_log(bot)\n"
         "    craft_item(bot, 'planks', 1)\n    craft_item(bot, 'crafting_table', 1)\n")
DIAMOND = "def mine_diamond(bot):\n    mine_block(bot, 'diamond_ore', 1)\n"
WANDER = "def wander(bot):\n    explore_until(bot, 'sand', 3)\n"
TASKS = ["Craft 1 crafting table", "Mine 1 diamond", "Explore the land", "Mine 2 sand"]


def _field(text: str, name: str) -> str:
    found = re.search(rf"^{name}: (.*)$", text, re.MULTILINE)
    return found.group(1) if found else ""


def _fenced(code: str) -> str:
    return f"Explain: ...\nPlan:\n1) do it\nCode:\n```python\n{code}```"


class Responder:
    """Plays every agent; remembers the action prompts it has seen (a repeated prompt is a
    retry after a reply without code)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, request: LLMRequest, seed: int | None) -> str:
        return respond(request, self.seen)


def respond(request: LLMRequest, seen: set[str]) -> str:
    system = request.messages[0]["content"]
    user = request.messages[-1]["content"]
    if system.startswith("You are a helpful assistant that tells me the next immediate task"):
        done = _field(user, "Completed tasks so far").split(", ")
        failed = _field(user, "Failed tasks that are too hard").split(", ")
        task = next(t for t in TASKS if t not in done and t not in failed)
        return json.dumps({"reasoning": "next on the list", "task": task})
    if system.startswith("You are an assistant that assesses my progress"):
        task = _field(user, "Task")
        ok = task == "Explore the land"
        return json.dumps({"reasoning": "scripted", "success": ok,
                           "critique": "" if ok else f"critic says: try harder at {task}"})
    if system.startswith("You are a helpful assistant that writes a description"):
        name = re.search(r"The main function is `(\w+)`", user).group(1)
        return {"mine_one_log": "Explores for a log and mines one log.",
                "craft_table": "Gets a log, makes planks and crafts a crafting table.",
                }.get(name, f"Does {name}.")
    task = _field(user, "Task")
    if task == "Mine 1 log":
        return _fenced(MINE_LOG if "Execution error: ValueError" in user else MINE_LOG_BAD)
    if task == "Craft 1 crafting table":
        assert "def mine_one_log(bot)" in system, "the learned skill was not retrieved"
        return _fenced(TABLE)
    if task == "Mine 1 diamond":
        if "Critique: None" in user and user not in seen:
            seen.add(user)
            return "I cannot write code for this."  # no code: parsed, nothing runs
        return _fenced(DIAMOND)
    if task == "Explore the land":
        return _fenced(WANDER)
    if task == "Mine 2 sand":
        raise PermanentLLMError("scripted: the model refuses this one")
    raise AssertionError(task)


def _run(tmp_path: Path, **overrides: str) -> tuple[dict[str, Any], Path]:
    out = tmp_path / "voyager"
    params = {"explorers": "1", "tasks": "5", "embedder": "hashing", "timeout": "5",
              **overrides}
    recipe = Recipe.load("voyager", params)
    summary = run_scripted(recipe, out, ScriptedTestBackend(Responder()))
    return summary, out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    return _run(tmp_path_factory.mktemp("voyager"))


def test_the_loop_with_the_scripted_test_backend(run: tuple[dict[str, Any], Path]) -> None:
    summary, out = run
    assert_closed(summary)
    rows = read_jsonl(out / "curriculum.jsonl")
    by_task = {r["task"]: r for r in rows}
    # The first task is the authors' fixed one; its first program raised, the retry saw the
    # error (and the chat log / code) and succeeded.
    first = by_task["Mine 1 log"]
    assert first["task_source"] == "first_task" and first["success"]
    bad, good = first["attempts"]
    assert bad["error"].startswith("ValueError: No block named 'logs'")
    assert bad["execution"]["status"] == "error" and bad["success"] is False
    assert bad["critic"] is None  # the authors' critic is not asked after an error
    retry_prompt = good["messages"][1]["content"]
    assert "Execution error: ValueError: No block named 'logs'" in retry_prompt
    assert "mine_block(bot, 'logs', 1)" in retry_prompt  # code from the last round
    assert good["check"] == {"success": True, "reason": "gained 1 log (needed 1)"}
    assert first["skill"]["name"] == "mine_one_log" and first["skill"]["version"] == 1
    assert first["state_after"]["inventory"]["log"] >= 1
    # The curriculum proposed the next task; the skill was retrieved into the system prompt
    # and loaded in the sandbox (craft_table calls mine_one_log).
    table = by_task["Craft 1 crafting table"]
    assert table["task_source"] == "curriculum" and table["success"]
    assert table["attempts"][0]["retrieved"] == ["mine_one_log"]
    assert "Answer: Craft crafting_table" in table["context"]  # the world's recipe book
    assert table["state_after"]["inventory"]["crafting_table"] == 1
    assert table["library_size"] == 2


def test_a_task_that_never_succeeds_is_recorded_failed(run: tuple[dict[str, Any], Path]
                                                       ) -> None:
    summary, out = run
    rows = read_jsonl(out / "curriculum.jsonl")
    diamond = next(r for r in rows if r["task"] == "Mine 1 diamond")
    assert not diamond["success"] and diamond["skill"] is None
    assert diamond["attempts_used"] == 4  # the authors' 4
    no_code, *ran = diamond["attempts"]
    assert no_code["error"].startswith("Error parsing action response") and not no_code["code"]
    # The next round got the world check's critique (the critic's text, since it gave one).
    assert "Critique: critic says: try harder at Mine 1 diamond" in \
        ran[1]["messages"][1]["content"]
    assert all(a["check"]["success"] is False for a in ran)
    # The curriculum saw it among the failed tasks and moved on.
    later = next(r for r in rows if r["step"] == diamond["step"] + 1)
    assert "Mine 1 diamond" in later["failed_tasks"] and later["task"] == "Explore the land"
    # The critic decides a task the world cannot check.
    explore = next(r for r in rows if r["task"] == "Explore the land")
    assert explore["goal"] is None and explore["success"]
    assert explore["attempts"][0]["critic"]["success"] and explore["attempts"][0]["check"] is None


def test_nothing_disappears(run: tuple[dict[str, Any], Path]) -> None:
    summary, out = run
    rows = read_jsonl(out / "curriculum.jsonl")
    failed = read_jsonl(out / "failed.jsonl")
    # 5 slots: four tasks ran, the fifth's action call raised - a counted failure.
    assert step(summary, "slots")["out"] == 5
    assert step(summary, "explore")["out"] == 4 and step(summary, "explore")["failed"] == 1
    [failure] = failed
    assert failure["step"] == "explore" and "refuses" in failure["message"]
    # every attempt of every task is a trajectory record, with the messages sent
    trajectories = read_jsonl(out / "trajectories.jsonl")
    assert len(trajectories) == sum(r["attempts_used"] for r in rows) == 1 + 2 + 4 + 1 + 0
    assert {(t["step"], t["attempt"]) for t in trajectories} == \
        {(r["step"], a["attempt"]) for r in rows for a in r["attempts"]}
    assert all([m["role"] for m in t["messages"]] == ["system", "user", "assistant"]
               for t in trajectories)
    # the successful attempts are data.jsonl (SFT data); the others counted drops, each why
    data = read_jsonl(out / "data.jsonl")
    assert len(data) == sum(a["success"] for r in rows for a in r["attempts"]) == 3
    assert all(t["reject_reason"] is None for t in data)
    assert step(summary, "succeeded")["dropped"] == len(trajectories) - 3
    assert {t["reject_reason"] for t in trajectories if not t["success"]} >= {
        "attempt failed: gained 0 diamond, the task needs 1"}
    # every success is a skill record; every failure a counted drop
    skills = read_jsonl(out / "skills.jsonl")
    assert sorted(s["name"] for s in skills) == ["craft_table", "mine_one_log", "wander"]
    assert all(s["final"] for s in skills)
    assert step(summary, "skills")["dropped"] == sum(not r["success"] for r in rows)


def test_a_rerun_replays_from_the_cache(run: tuple[dict[str, Any], Path], tmp_path: Path
                                        ) -> None:
    out = tmp_path / "again"
    shutil.copytree(run[1], out)
    backend = ScriptedTestBackend(Responder())
    again = run_scripted(Recipe.load("voyager", {"explorers": "1", "tasks": "5",
                                                 "embedder": "hashing", "timeout": "5"}),
                         out, backend)
    # The failed slot is retried (failures are never cached); all other calls replay.
    assert step(again, "explore")["failed"] == 1
    assert backend.calls == 1  # only the refused call is asked again


def test_programs_and_the_chat_log() -> None:
    parsed = parse_reply("```python\nimport math\nx = 1\ndef helper(y):\n    return y\n\n"
                         "def main(bot):\n    helper(1)\n\nmain(bot)\n```")
    assert not isinstance(parsed, str)
    assert parsed.name == "main" and "x = 1" not in parsed.code and "main(bot)\n" not in \
        parsed.code.split("def main")[0]
    assert "import math" in parsed.code
    assert "single argument named 'bot'" in str(parse_reply("```python\ndef f(a, b):\n  pass\n```"))
    assert "name of a control primitive" in str(parse_reply(
        "```python\ndef mine_block(bot):\n    pass\n```"))
    assert chatlog_summary(["I cannot make stick because I need: 2 more planks",
                            "I need at least a wooden_pickaxe to mine stone!"]) == \
        "I also need 2 more planks, wooden_pickaxe."
    explorer = _Explorer(0, {}, None)  # type: ignore[arg-type]
    for task, ok in (("a", False), ("b", True), ("a", False), ("a", True), ("b", True)):
        explorer.update(task, ok)
    assert explorer.completed == ["b", "a"] and explorer.failed == []


def test_world_goals() -> None:
    assert world.goal_of("Mine 3 wood logs") == {"kind": "have", "item": "log", "count": 3}
    assert world.goal_of("Smelt 2 raw iron") == {"kind": "have", "item": "iron_ingot",
                                                 "count": 2}
    assert world.goal_of("Place a crafting table")["kind"] == "placed"
    assert world.goal_of("Kill a zombie") is None
    before = world.initial_state(1)
    after = {**before, "inventory": {"log": 2}}
    assert world.check_goal({"kind": "have", "item": "log", "count": 2}, before, after)[0]
    assert not world.check_goal({"kind": "have", "item": "log", "count": 3}, before, after)[0]
    table = world.goal_of("Place a crafting table")
    placed = {**before, "placed": ["crafting_table"]}
    assert world.check_goal(table, before, placed) == (True, "placed 1 crafting_table nearby "
                                                               "(needed 1)")
    assert not world.check_goal(table, placed, placed)[0]  # it was there before


def test_named_models_per_agent(tmp_path: Path) -> None:
    # The critic on a model of its own (the authors' split: gpt-4 acts, gpt-3.5 describes).
    critic_system = "You are an assistant that assesses my progress"

    def actor(request: LLMRequest, seed: int | None) -> str:
        assert not request.messages[0]["content"].startswith(critic_system)
        return respond(request, set())

    def critic(request: LLMRequest, seed: int | None) -> str:
        assert request.messages[0]["content"].startswith(critic_system)
        return respond(request, set())

    critic_backend = ScriptedTestBackend(critic, name="critic")
    recipe = Recipe.load("voyager", {"explorers": "1", "tasks": "2", "embedder": "hashing",
                                     "explore.critic_model": "judge"},
                         models={"judge": critic_backend})
    summary = run_scripted(recipe, tmp_path / "run", ScriptedTestBackend(actor))
    assert summary["status"] == "ok" and step(summary, "explore")["out"] == 2
    assert critic_backend.calls == 2  # one verdict per program that ran without an error


def test_more_steps_reuse_the_calls_of_the_first(tmp_path: Path) -> None:
    # The curriculum is sequential: steps 0-1 of a 4-step run send the same requests as a
    # 2-step run, so the longer rerun in the same folder asks only for steps 2-3.
    def params(tasks: int) -> dict[str, str]:
        return {"explorers": "2", "tasks": str(tasks), "embedder": "hashing"}

    short, full = ScriptedTestBackend(Responder()), ScriptedTestBackend(Responder())
    run_scripted(Recipe.load("voyager", params(2)), tmp_path / "run", short)
    longer = ScriptedTestBackend(Responder())
    summary = run_scripted(Recipe.load("voyager", params(4)), tmp_path / "run", longer)
    run_scripted(Recipe.load("voyager", params(4)), tmp_path / "fresh", full)
    assert step(summary, "explore")["out"] == 8
    assert short.calls > 0 and longer.calls == full.calls - short.calls
    assert step(summary, "explore")["llm_cache_hits"] >= short.calls
    # and the records are the same (ids hash the columns: no timings in them)
    for sink in ("curriculum.jsonl", "trajectories.jsonl", "skills.jsonl"):
        ids = [[r["_meta"]["id"] for r in read_jsonl(tmp_path / folder / sink)]
               for folder in ("run", "fresh")]
        assert ids[0] == ids[1] and ids[0], sink
