"""CAMEL role-playing with the scripted test backend (a test double, no model): the task
specifier, the two agents' views of the dialogue under the inception prompts, every stop rule
(done token, turn limit, role flip, repetition, user not instructing) and the accounting; and the
AI Society generation before it (``camel-society``): role lists, LLM role lists, per-pair task
generation, the drops of empty/short/repeated tasks with their reasons."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.methods.camel.society import clean_item, list_schema, task_problems
from tests.support.runs import assert_closed, read_jsonl
from tests.support.scripted_backend import ScriptedTestBackend


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
    assert_closed(data)
    roleplay = next(s for s in data["steps"] if s["name"] == "roleplay")
    return roleplay, read_jsonl(out / "data.jsonl"), read_jsonl(out / "dropped.jsonl")


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
    dropped = [d for d in read_jsonl(tmp_path / "out" / "dropped.jsonl") if d["step"] == "unique"]
    assert all(d["reason"].startswith("exact duplicate of") for d in dropped)
    tasks = [d["record"]["original_task"] for d in dropped]
    tasks += [r["original_task"] for r in read_jsonl(tmp_path / "out" / "data.jsonl")]
    assert sorted(tasks) == ["Bake", "Cook rice", "Draft a lease"]
    [failure] = read_jsonl(tmp_path / "out" / "failed.jsonl")
    assert "tasks.jsonl:2" in json.dumps(failure)


# --- camel-society: role lists -> generated tasks -> role-play ------------------------------------

TASK_PROMPT = "diverse tasks that"


class Society(ScriptedTestBackend):
    """Plays the role generator, the task generator, the specifier and both agents.

    ``tasks(assistant_role, user_role)`` is the task generator's reply (JSON text); dialogues
    quote their task so that different tasks give different conversations.
    """

    def __init__(self, tasks: Callable[[str, str], str],
                 roles: dict[str, str] | None = None) -> None:
        super().__init__(self.reply)
        self.tasks, self.roles = tasks, roles or {}
        self.task_prompts: list[str] = []

    def reply(self, request, seed) -> str:
        messages = request.messages
        text = messages[-1]["content"]
        system = messages[0]["content"] if messages[0]["role"] == "system" else ""
        if TASK_PROMPT in text:
            self.task_prompts.append(text)
            pair = re.search(r"tasks that (.+) can assist (.+) cooperatively", text)
            return self.tasks(pair.group(1), pair.group(2))
        if "different roles that you can play" in text:
            return self.roles["assistant"]
        if "groups of internet users" in text:
            return self.roles["user"]
        if system == "You can make a task more specific.":
            return re.search(r"to complete: (.+)\.\n", text).group(1)
        if system.startswith("===== RULES OF USER ====="):
            task = re.search(r"Here is the task: (.+)\. Never", system).group(1)
            done = any(m["role"] == "assistant" for m in messages)
            return "<CAMEL_TASK_DONE>" if done else f"Instruction: start on {task}\nInput: None"
        return f"Solution: a plan for {messages[-1]['content'][19:]}. Next request."


def society(tmp_path: Path, backend: Society, limit: int, **params: str
            ) -> tuple[dict[str, dict], list[dict], list[dict]]:
    recipe = Recipe.load("camel-society", {"max_turns": "2", **params})
    out = tmp_path / "out"
    summary = asyncio.run(run_recipe(recipe, out, RunOptions(backend=backend, limit=limit)))
    data = summary.to_json()
    assert data["status"] == "ok"
    assert_closed(data), data["steps"]
    return ({s["name"]: s for s in data["steps"]}, read_jsonl(out / "data.jsonl"),
            read_jsonl(out / "dropped.jsonl"))


def test_society_generates_tasks_per_role_pair_and_drops_bad_ones(tmp_path: Path) -> None:
    def tasks(assistant: str, user: str) -> str:
        good = f"Plan a monthly budget an {user} can keep"
        return json.dumps({"tasks": [f"1. {good}", f"2. {good.lower()}.", "3. Go", "",
                                     f"Draft a tax checklist for an {user}"]})

    backend = Society(tasks)
    steps, kept, dropped = society(tmp_path, backend, limit=2, num_tasks="5")
    # The paper's task generation prompt, once per role pair (the first two pairs of the grid).
    # (This backend has no constrained decoding, so the client appends the schema to it.)
    assert ['"maxItems":5,' in p for p in backend.task_prompts] == [True, True]
    assert [p.split("\n\nAnswer with only")[0] for p in backend.task_prompts] == [
        f"List 5 diverse tasks that Accountant can assist {user} cooperatively to achieve "
        "together.\nBe concise. Be creative." for user in ("Athlete", "Entrepreneur")]
    assert (steps["roles"]["out"], steps["role_names"]["out"]) == (2, 2)
    assert steps["role_names"]["llm_calls"] == 0  # roles from the file: no LLM
    assert (steps["tasks"]["in"], steps["tasks"]["expanded"], steps["tasks"]["out"]) == (2, 2, 10)
    assert steps["tasks"]["llm_calls"] == 2
    # Per pair: a repeat (after cleaning numbering, case and the period), a too-short and an
    # empty task are dropped, each with its reason; two tasks per pair go on.
    assert (steps["usable_tasks"]["out"], steps["usable_tasks"]["dropped"]) == (4, 6)
    reasons = sorted(d["reason"] for d in dropped if d["step"] == "usable_tasks")
    assert reasons == sorted(["generated task 1 repeats task 0 of this role pair",
                              "generated task 2 too short (1 words < 3)",
                              "generated task 3 is empty"] * 2)
    assert steps["roleplay"]["in"] == 4 and steps["unique"]["kept"] == 4 == len(kept)
    by_task = {r["original_task"]: r for r in kept}
    assert sorted(by_task) == ["Draft a tax checklist for an Athlete",
                               "Draft a tax checklist for an Entrepreneur",
                               "Plan a monthly budget an Athlete can keep",
                               "Plan a monthly budget an Entrepreneur can keep"]
    record = by_task["Draft a tax checklist for an Athlete"]
    assert (record["assistant_role"], record["user_role"]) == ("Accountant", "Athlete")
    assert (record["task_source"], record["task_index"], record["role_source"]) == \
        ("generated", 4, "file")
    assert record["turns"] == 1 and record["terminated_by"] == "done_token"
    assert "Draft a tax checklist for an Athlete" in record["conversations"][0]["value"]
    # The generated task records themselves carry the method's fields and the call's counts.
    task_drop = next(d for d in dropped if d["reason"] == "generated task 3 is empty")
    assert task_drop["record"]["task_source"] == "generated"
    assert task_drop["record"]["_meta"]["tasks_listed"] == 5
    assert task_drop["record"]["_meta"]["tasks_usable"] == 2


def test_society_pair_without_a_task_list_is_dropped_with_the_reason(tmp_path: Path) -> None:
    def tasks(assistant: str, user: str) -> str:
        return "I would rather not." if user == "Athlete" else '{"tasks": ["   "]}'

    steps, kept, dropped = society(tmp_path, Society(tasks), limit=2)
    assert kept == [] and steps["tasks"]["dropped"] == 1 and steps["tasks"]["expanded"] == 1
    [no_list] = [d for d in dropped if d["step"] == "tasks"]
    assert no_list["reason"].startswith("model gave no valid task list")
    assert no_list["record"]["user_role"] == "Athlete"
    [blank] = [d for d in dropped if d["step"] == "usable_tasks"]
    assert blank["reason"] == "generated task 0 is empty"
    assert steps["roleplay"]["in"] == 0


def test_society_roles_from_the_llm_fill_the_grid(tmp_path: Path) -> None:
    roles = {"assistant": json.dumps({"roles": ["1. Chef", "chef"]}),
             "user": json.dumps({"roles": ["Farmer", "Student."]})}
    backend = Society(lambda a, u: json.dumps({"tasks": [f"Cook a harvest dinner for a {u}"]}),
                      roles)
    steps, kept, dropped = society(tmp_path, backend, limit=5, generate_roles="true",
                                   num_roles="2", num_tasks="1")
    # Two real calls (the two role lists) for all five pairs: the rest are cache hits.
    assert steps["role_names"]["llm_calls"] == 2
    assert steps["role_names"]["llm_cache_hits"] == 2 * 5 - 2
    assert {(r["assistant_role"], r["user_role"], r["role_source"]) for r in kept} == \
        {("Chef", "Farmer", "generated"), ("Chef", "Student", "generated")}
    # "chef" repeats "Chef", so the one usable assistant role serves assistant index 0 only;
    # pairs past the lists (user roles #3, #4; assistant role #2) are dropped with the reason.
    reasons = sorted(d["reason"] for d in dropped if d["step"] == "role_names")
    assert reasons == [
        "model listed 1 usable assistant roles; this pair needs assistant role #2 "
        "(role 1: repeats an earlier role)",
        "model listed 2 usable user roles; this pair needs user role #3",
        "model listed 2 usable user roles; this pair needs user role #4"]
    assert backend.task_prompts[0].startswith("List 1 diverse tasks that Chef can assist Farmer")


def test_task_cleaning_and_problems() -> None:
    assert clean_item('2) "Write a grant proposal."') == "Write a grant proposal"
    assert clean_item("- Task 3: Build a website") == "Build a website"
    assert clean_item(None) == ""
    assert task_problems(["Build a small website", "build a small WEBSITE!", "Hi", "",
                          "Cooperat-team-work", "}"], 3) == [
        None, "generated task 1 repeats task 0 of this role pair",
        "generated task 2 too short (1 words < 3)", "generated task 3 is empty",
        "generated task 4 too short (1 words < 3)", "generated task 5 has no words ('}')"]
    schema = list_schema("tasks", 4, 900)
    assert schema["properties"]["tasks"]["maxItems"] == 4
    assert schema["properties"]["tasks"]["items"]["maxLength"] == 900
