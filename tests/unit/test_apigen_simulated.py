"""The ``apigen`` recipe with simulated APIs (ToolACE) through the engine, on two
ScriptedTestBackends (test doubles playing generator, caller and judge on one, the API
simulator on the other, a named model): each check drops what it should with its stage (a
call breaking an argument's regex pattern at format, a simulator answer that breaks the API's
result schema or reports an error at execution, an implausible simulated result at the
judge's tool-response check), and kept records say their results were simulated."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.errors import RecipeError
from synthloom.core.recipe import Recipe, resolve_data_path
from synthloom.llm.client import LLMClient
from synthloom.llm.types import LLMRequest, PermanentLLMError, ToolCall
from synthloom.tools.pool import PoolError, load_api_pool, parse_api
from synthloom.tools.simulated import SimulatedAPI
from tests.support.runs import assert_closed, read_jsonl, step
from tests.support.scripted_backend import ScriptedTestBackend

_TOOL = re.compile(r"^- (\w+):", re.MULTILINE)


def api(name: str, parameters: dict, returns: dict, example: tuple[dict, object]) -> dict:
    return {"domain": "demo", "name": name, "description": f"The {name} API.",
            "parameters": {"type": "object", "properties": parameters,
                           "required": list(parameters)},
            "returns": returns,
            "examples": [{"arguments": example[0], "result": example[1]}]}


NUMBER = {"type": "object", "properties": {"value": {"type": "number"}}, "required": ["value"]}
POOL = {"apis": [
    api("city_temp", {"city": {"type": "string"}}, NUMBER, ({"city": "Oslo"}, {"value": 3})),
    api("stock_price", {"symbol": {"type": "string", "pattern": "^[A-Z]{1,5}$"}}, NUMBER,
        ({"symbol": "ACME"}, {"value": 10.5})),
    api("ticket_price", {"route": {"type": "string"}}, NUMBER, ({"route": "A-B"}, {"value": 9})),
    api("flight_delay", {"flight": {"type": "string"}}, NUMBER, ({"flight": "BA1"}, {"value": 5})),
    api("bus_fare", {"line": {"type": "string"}}, NUMBER, ({"line": "7"}, {"value": 2})),
]}
#: The caller's arguments per API (stock_price's break the symbol's pattern).
ARGUMENTS = {"city_temp": {"city": "Lima"}, "stock_price": {"symbol": "acme corp"},
             "ticket_price": {"route": "X-Y"}, "flight_delay": {"flight": "ZZ9"},
             "bus_fare": {"line": "12"}}
#: The simulator's answer per API: valid; (never called); a result breaking the result
#: schema; an error; valid in form but implausible (the judge rejects it).
SIMULATED = {"city_temp": {"result": {"value": 21}},
             "ticket_price": {"result": {"value": "cheap"}},
             "flight_delay": {"error": "unknown flight ZZ9"},
             "bus_fare": {"result": {"value": -40}}}


def _text(request: LLMRequest) -> str:
    return "\n".join(str(m.get("content")) for m in request.messages or [])


def play(request: LLMRequest, seed: int | None) -> str:
    text = _text(request)
    assert "You are an API server" not in text, "a simulated call reached the run's model"
    if '"query"' in text:
        return json.dumps({"query": f"Please use {_TOOL.search(text)[1]} for me today."})
    if "You can call these tools" in text:
        name = re.search(r"Please use (\w+)", text)[1]
        return json.dumps({"tool_calls": [{"name": name, "arguments": ARGUMENTS[name]}]})
    if '"passes"' in text:
        assert "[simulated]" in text and '"description": "The ' in text  # the API definitions
        assert '"returns": {"type": "object"' in text  # with their result schemas
        wrong = '"value": -40' in text
        return json.dumps({"passes": not wrong, "reason": "a fare cannot be negative"
                           if wrong else "fine"})
    raise AssertionError(f"unexpected request: {text[:200]}")


def simulate(request: LLMRequest, seed: int | None) -> str:
    text = _text(request)
    assert text.startswith("You are an API server") and "Schema of the result:" in text
    name = json.loads(text.split("API specification:\n", 1)[1].split("\n", 1)[0])["name"]
    return json.dumps(SIMULATED[name])


def test_simulated_calls_are_verified_and_kept_records_say_simulated(tmp_path: Path) -> None:
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps(POOL))
    simulator = ScriptedTestBackend(simulate, name="simulator")
    recipe = Recipe.load("apigen", {"count": "30", "kinds": "[simple]", "domains": "[]",
                                    "simulated": str(pool), "simulator": "sim"},
                         models={"sim": simulator})
    out = tmp_path / "run"
    options = RunOptions(backend=ScriptedTestBackend(play, name="apigen-play"))
    summary = asyncio.run(run_recipe(recipe, out, options)).to_json()
    assert summary["status"] == "ok"
    assert_closed(summary)
    kept, dropped = read_jsonl(out / "data.jsonl"), read_jsonl(out / "dropped.jsonl")
    assert len(kept) + len(dropped) == 30 and step(summary, "verified")["dropped"] == len(dropped)
    reasons: dict[str, set[str]] = {}
    for row in dropped:
        record = row["record"]
        assert row["reason"].startswith(f"{record['reject_stage']}: ")
        reasons.setdefault(record["tools"][0]["function"]["name"], set()).add(row["reason"])
    assert set(reasons) == {"stock_price", "ticket_price", "flight_delay", "bus_fare"}
    # Rule layer on the call: the symbol breaks its regex pattern (never simulated).
    [pattern] = reasons["stock_price"]
    assert pattern.startswith("format:") and "arguments.symbol" in pattern
    # Execution: a result breaking the API's result schema (after the client's re-asks) and
    # an error answer both fail the call.
    [invalid] = reasons["ticket_price"]
    assert invalid.startswith("execution: ticket_price (simulated): the simulator's answer "
                              "is invalid") and "{'value': 'cheap'}" in invalid
    assert reasons["flight_delay"] == {"execution: flight_delay (simulated): unknown flight ZZ9"}
    # Model layer on the result: the judge's tool-response check.
    assert reasons["bus_fare"] == {"semantic: a fare cannot be negative"}
    assert kept and {r["tool_calls"][0]["name"] for r in kept} == {"city_temp"}
    for record in kept:
        [result] = record["tool_results"]
        assert result["content"] == {"value": 21}
        assert result["provenance"]["kind"] == "simulated"
        assert result["provenance"]["model"] == "scripted:simulator"
        assert [m["role"] for m in record["messages"]] == ["user", "assistant", "tool"]
    # Only the named simulator answered simulated calls (ticket_price's re-asks included).
    assert simulator.calls > len(kept) + 1
    assert summary["models"]["sim"]["steps"] == ["execute"]


def test_the_shipped_pool_loads_and_bad_pools_are_refused(tmp_path: Path) -> None:
    apis = load_api_pool(resolve_data_path("pkg:tools/library/simulated.json"))
    domains = {a.domain for a in apis}
    assert len(apis) >= 8 and domains == {"weather", "travel", "finance", "food"}
    assert all(sum(a.domain == d for a in apis) >= 2 for d in domains)  # irrelevance needs 2
    broken = {"apis": [api("x", {"n": {"type": "integer"}}, NUMBER, ({"n": "one"}, {"value": 1}))]}
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(PoolError, match=r"example 0 breaks its own schemas: \$\.n"):
        load_api_pool(path)
    clash = {"apis": [{**POOL["apis"][0], "name": "add"}]}  # the math library's add
    path.write_text(json.dumps(clash))
    recipe = Recipe.load("apigen", {"simulated": str(path)})
    with pytest.raises(RecipeError, match="clashes with the executable library"):
        recipe.sources[0].setup(None)
    with pytest.raises(RecipeError, match="may be empty only when simulated"):
        Recipe.load("apigen", {"domains": "[]"})


def test_a_simulator_that_cannot_be_reached_fails_the_item_not_the_api() -> None:
    # A server error is the run's trouble: it propagates (the item fails, uncached) instead
    # of becoming a tool error that would reject the candidate as if the API had failed.
    backend = ScriptedTestBackend(simulate, errors=[PermanentLLMError("HTTP 404", status=404)])
    api_env = SimulatedAPI(LLMClient(backend), [parse_api(POOL["apis"][0], "test").tool])
    with pytest.raises(PermanentLLMError):
        asyncio.run(api_env.call(ToolCall("c1", "city_temp", {"city": "Lima"})))
