"""Tool environments (synthloom.tools): schemas from signatures and docstrings, Python tools
in the sandbox and in process, errors and timeouts as tool messages, the stateful toys and
their policies, and a simulated API (played by the ScriptedTestBackend, a test double)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Literal

import pytest

from synthloom.llm.client import LLMClient
from synthloom.llm.toolcalls import call_errors
from synthloom.llm.types import LLMRequest, ToolCall
from synthloom.tools import FunctionTools, SandboxedPythonTools, function_schema
from synthloom.tools.envs import ENVIRONMENTS, Bank, Calendar, Store
from synthloom.tools.library import LIBRARY
from synthloom.tools.simulated import SimulatedAPI
from synthloom.verify.sandbox import SandboxLimits
from tests.support.scripted_backend import ScriptedTestBackend


def lookup(city: str, units: Literal["metric", "imperial"] = "metric",
           days: list[int] | None = None, *, verbose: bool = False) -> dict[str, Any]:
    """Look up the weather.

    More text that is not the description.

    Args:
        city: The city's name.
        units: Unit system.
        days (list): Days ahead.
    """
    return {"city": city, "units": units}


def call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(f"id-{name}", name, arguments)


def test_function_schema_from_signature_and_docstring() -> None:
    fn = function_schema(lookup)["function"]
    assert fn["name"] == "lookup" and fn["description"] == "Look up the weather."
    params = fn["parameters"]
    assert params["required"] == ["city"]
    assert params["properties"]["city"] == {"type": "string", "description": "The city's name."}
    assert params["properties"]["units"]["enum"] == ["metric", "imperial"]
    assert params["properties"]["units"]["default"] == "metric"
    assert params["properties"]["days"]["type"] == ["array", "null"]
    assert params["properties"]["days"]["description"] == "Days ahead."
    assert params["properties"]["verbose"] == {"type": "boolean", "default": False}


def test_in_process_tools_errors_and_timeouts_become_tool_messages() -> None:
    def divide(a: float, b: float) -> float:
        """Divide."""
        return a / b

    def hang() -> None:
        """Never returns (in time)."""
        time.sleep(3)

    env = FunctionTools([divide, hang], timeout_s=0.3)
    ok = asyncio.run(env.call(call("divide", a=1, b=4)))
    assert ok.ok and ok.content == 0.25 and ok.provenance["kind"] == "python"
    bad = asyncio.run(env.call(call("divide", a=1, b=0)))
    assert bad.error == "ZeroDivisionError: division by zero"
    assert json.loads(bad.message(call("divide"))["content"]) == {"error": bad.error}
    began = time.perf_counter()
    slow = asyncio.run(env.call(call("hang")))
    assert "timed out after 0.3 s" in slow.error and time.perf_counter() - began < 2
    unknown = asyncio.run(env.call(call("nope")))
    assert unknown.error == "unknown tool 'nope'"


def test_sandboxed_library_tools_run_and_fail_in_their_own_process() -> None:
    env = SandboxedPythonTools(LIBRARY["units"])
    schemas = asyncio.run(env.tools())
    assert {s["function"]["name"] for s in schemas} == {
        "convert_length", "convert_mass", "convert_temperature"}
    result = asyncio.run(env.call(call("convert_temperature", value=100, from_unit="C",
                                       to_unit="F")))
    assert result.content == 212.0 and result.provenance["sandbox"] is True
    maths = SandboxedPythonTools(LIBRARY["math"])
    error = asyncio.run(maths.call(call("sqrt", x=-1)))
    assert error.error == "ValueError: square root of a negative number"


def test_a_hanging_sandboxed_tool_is_killed_at_its_timeout(tmp_path: Any) -> None:
    import importlib.util
    import sys

    source = tmp_path / "slowtools.py"
    source.write_text('def spin(n: int) -> int:\n    """Loop."""\n    while True:\n        n += 1\n')
    spec = importlib.util.spec_from_file_location("slowtools", source)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["slowtools"] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    try:
        env = SandboxedPythonTools(module, limits=SandboxLimits(timeout_s=1.0))
        began = time.perf_counter()
        result = asyncio.run(env.call(call("spin", n=0)))
    finally:
        del sys.modules["slowtools"]
    assert result.error == "tool 'spin' timed out after 1 s"
    assert time.perf_counter() - began < 8


def test_stateful_store_enforces_its_policy_and_exposes_state() -> None:
    store = Store()
    before = store.state()
    placed = asyncio.run(store.call(call("place_order", items={"p3": 2})))
    assert placed.ok and placed.content["total"] == 58.0
    assert store.state()["products"]["p3"]["stock"] == 0
    refused = asyncio.run(store.call(call("place_order", items={"p3": 1})))
    assert refused.error.startswith("policy 1:")
    assert asyncio.run(store.call(call("cancel_order", order_id="o1"))).error.startswith(
        "policy 2:")
    asyncio.run(store.call(call("cancel_order", order_id=placed.content["id"])))
    after = store.state()
    assert after["products"] == before["products"]  # cancelled: stock back
    assert after != before  # the order is recorded as cancelled
    # The same actions from the same start give the same state (APIGen-MT's comparison).
    replay = Store()
    for c in (call("place_order", items={"p3": 2}), call("cancel_order", order_id="o3")):
        asyncio.run(replay.call(c))
    assert replay.state() == after


def test_bank_and_calendar_policies() -> None:
    bank = Bank()
    assert asyncio.run(bank.call(call("transfer", from_account="B-200", to_account="A-100",
                                      amount=500.0))).error.startswith("policy 2:")
    moved = asyncio.run(bank.call(call("transfer", from_account="A-100", to_account="B-200",
                                       amount=200.0)))
    assert moved.content == {"from_balance": 1000.0, "to_balance": 500.0}
    assert bank.state()["log"] == [["transfer", "A-100", "B-200", 200.0]]
    cal = Calendar()
    assert "policy 1" in asyncio.run(cal.call(call(
        "create_event", title="x", date="2025-03-08", start="10:00", end="11:00"))).error
    assert "policy 3" in asyncio.run(cal.call(call(
        "create_event", title="x", date="2025-03-03", start="09:00", end="10:00"))).error
    assert "policy 4" in asyncio.run(cal.call(call("cancel_event", event_id="e2"))).error
    made = asyncio.run(cal.call(call("create_event", title="1:1", date="2025-03-03",
                                     start="10:00", end="10:30")))
    assert made.content == {"id": "e3"} and "e3" in cal.state()["events"]
    for env_type in ENVIRONMENTS.values():
        env = env_type()
        assert env.policy and env.state()
        # Every toy's tools have schemas a model's calls can be validated against.
        schemas = asyncio.run(env.tools())
        assert schemas and call_errors([], schemas) == []


def test_simulated_api_answers_from_the_model_with_provenance() -> None:
    seen: list[LLMRequest] = []

    def play(request: LLMRequest, seed: int | None) -> str:
        seen.append(request)
        text = request.messages[-1]["content"]
        args = json.loads(text.split("Call arguments:\n", 1)[1].split("\n", 1)[0])
        if args.get("city") == "Atlantis":
            return '{"error": "unknown city"}'
        return json.dumps({"result": {"city": args["city"], "temp_c": 21}})

    client = LLMClient(ScriptedTestBackend(play, name="simulator"))
    api = SimulatedAPI(client, [function_schema(lookup)],
                       examples={"lookup": [{"arguments": {"city": "Oslo"},
                                             "result": {"city": "Oslo", "temp_c": 4}}]})
    result = asyncio.run(api.call(call("lookup", city="Lima")))
    assert result.content == {"city": "Lima", "temp_c": 21}
    assert result.provenance == {"kind": "simulated", "tool": "lookup",
                                 "model": "scripted:simulator", "template": api.template.hash}
    assert '"temp_c": 4' in seen[0].messages[-1]["content"]  # the examples were shown
    assert asyncio.run(api.call(call("lookup", city="Atlantis"))).error == "unknown city"


def test_parallel_calls_on_a_stateful_environment_run_in_order() -> None:
    bank = Bank()
    results = asyncio.run(bank.call_all([
        call("transfer", from_account="B-200", to_account="A-100", amount=300.0),
        call("transfer", from_account="B-200", to_account="A-100", amount=1.0)]))
    assert results[0].ok and results[1].error.startswith("policy 2:")


@pytest.mark.parametrize("domain", sorted(LIBRARY))
def test_every_library_module_has_documented_tools(domain: str) -> None:
    env = SandboxedPythonTools(LIBRARY[domain])
    for schema in asyncio.run(env.tools()):
        fn = schema["function"]
        assert fn["description"], fn["name"]
        assert all(p.get("description") for p in fn["parameters"]["properties"].values())
