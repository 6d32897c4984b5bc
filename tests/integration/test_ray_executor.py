"""The Ray executor on a real local Ray cluster (``ray.init(num_cpus=2)``): parity of record
ids with the local executor, closed accounting, global steps, context inputs, zero-call reruns,
and a worker killed mid-run. LLM steps use the real embedded model (quickstart) or the
ScriptedTestBackend (a test double, where the test needs to count or kill at the server)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from synthloom.api import RunOptions, run_recipe
from synthloom.cli import app
from synthloom.core.context import ItemContext
from synthloom.core.errors import SynthloomError
from synthloom.core.ray_executor import RayExecutor
from synthloom.core.recipe import Recipe
from synthloom.core.records import Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep
from tests.support.fault_proxy import (
    FaultPlan,
    FaultProxy,
    ScriptedHTTPError,
    ScriptedOpenAIServer,
)
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text
from tests.support.steps import CountContext, ExactDedup, UpperConfig
from tests.unit.test_synthquestions_steps import scripted

ray = pytest.importorskip("ray", reason="ray not installed (extra: ray)")
pytestmark = pytest.mark.integration
for _step in (CountContext, ExactDedup):
    register_step(_step)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # One local cluster for the module; the executor leaves a cluster it did not start running.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             runtime_env={"env_vars": {"PYTHONPATH": os.getcwd()}})
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    yield
    ray.shutdown()


def rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def ids(path: Path) -> list[str]:
    """Record ids of a data file, or the ids a dropped/failed file names."""
    return [r["_meta"]["id"] if "_meta" in r else r["id"] for r in rows(path)]


def closes(s: dict) -> bool:
    produced = {"expand": s.get("expanded"), "global": s.get("kept")}.get(s["kind"], s["out"])
    return s["kind"] == "source" or s["in"] == produced + s["failed"] + s["dropped"]


def go(recipe: Recipe, out: Path, **options) -> dict:
    return asyncio.run(run_recipe(recipe, out, RunOptions(**options))).to_json()


def test_quickstart_on_ray_equals_local_and_reruns_with_zero_calls(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (extra: embedded)")
    recipe = Recipe.load("quickstart", {"max_response_tokens": "48"})
    local = go(recipe, tmp_path / "local", limit=4)
    on_ray = go(recipe, tmp_path / "ray", limit=4, executor="ray")
    assert on_ray["status"] == "ok" and all(closes(s) for s in on_ray["steps"])
    assert ids(tmp_path / "ray" / "data.jsonl") == ids(tmp_path / "local" / "data.jsonl")
    assert [(s["name"], s["in"], s["out"], s["dropped"]) for s in on_ray["steps"]] == \
        [(s["name"], s["in"], s["out"], s["dropped"]) for s in local["steps"]]
    assert on_ray["llm_calls"] == local["llm_calls"] > 0
    # The workers' shards were folded into run.db.
    assert not list((tmp_path / "ray" / "cache").glob("shard-*.db"))
    again = go(recipe, tmp_path / "ray", limit=4, executor="ray")
    assert again["llm_calls"] == 0
    assert ids(tmp_path / "ray" / "data.jsonl") == ids(tmp_path / "local" / "data.jsonl")


GLOBAL_RECIPE = """
name: ray-global
seed: 3
sources:
  - {name: seeds, type: jsonl, path: SEEDS}
steps:
  - name: answer
    type: generate
    template: answer.jinja
    output: answer
  - name: exact
    type: dedup_exact
    column: answer
  - name: long_enough
    type: filter_length
    column: answer
    min_words: 2
  - name: count
    type: test_count_context
    input: long_enough
    context: [exact]
sinks:
  - {type: jsonl, path: data.jsonl}
  - {type: jsonl, path: before_filter.jsonl, from: exact}
"""


def answer_for(request, seed) -> str:
    text = last_user_text(request)
    number = int(text.split()[-1])
    # Every third answer repeats (dedup drops it); multiples of 5 are one word (filter drops).
    return "short" if number % 5 == 0 else f"answer {number % 3 if number > 6 else number}"


def write_global_recipe(tmp_path: Path, n: int) -> Recipe:
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"q": f"question {i}"}) + "\n" for i in range(n)))
    (tmp_path / "answer.jinja").write_text("Answer: {{ q }}")
    path = tmp_path / "ray-global.yaml"
    path.write_text(GLOBAL_RECIPE.replace("SEEDS", str(seeds)))
    return Recipe.load(path)


def test_global_steps_context_and_two_sinks_match_local(tmp_path: Path) -> None:
    recipe = write_global_recipe(tmp_path, 40)
    local = go(recipe, tmp_path / "local", backend=ScriptedTestBackend(answer_for), batch_size=8)
    on_ray = go(recipe, tmp_path / "ray", backend=ScriptedTestBackend(answer_for), batch_size=8,
                executor="ray", ray_actors=2)
    assert on_ray["status"] == "ok" and all(closes(s) for s in on_ray["steps"])
    strip = [{k: v for k, v in s.items() if k != "seconds"} for s in on_ray["steps"]]
    assert strip == [{k: v for k, v in s.items() if k != "seconds"} for s in local["steps"]]
    for name in ("data.jsonl", "before_filter.jsonl"):
        assert ids(tmp_path / "ray" / name) == ids(tmp_path / "local" / name), name
    # Drops arrive as the driver drains them: same set, same reasons, order may differ.
    dropped = {(r["id"], r["step"], r["reason"]) for r in rows(tmp_path / "ray" / "dropped.jsonl")}
    assert dropped == {(r["id"], r["step"], r["reason"])
                       for r in rows(tmp_path / "local" / "dropped.jsonl")}
    assert len(dropped) == sum(s["dropped"] for s in on_ray["steps"]) > 0
    counted = rows(tmp_path / "ray" / "data.jsonl")
    assert counted and all(r["context_size"] == len(rows(tmp_path / "ray" / "before_filter.jsonl"))
                           for r in counted)


class KillingBackend(ScriptedTestBackend):
    """Kills its own worker process at the 7th call of the first attempt, and logs every call
    (started / finished) to a file, so the test counts requests across processes."""

    def __init__(self, log: Path) -> None:
        super().__init__(lambda request, seed: f"answer number {last_user_text(request)}")
        self.log = str(log)

    async def complete(self, request, *, seed):
        prompt = last_user_text(request)
        with open(self.log, "a") as handle:
            handle.write(json.dumps(["start", prompt]) + "\n")
        marker = Path(self.log + ".killed")
        started = Path(self.log).read_text().count('["start"')
        if started == 7 and not marker.exists():
            marker.write_text("x")
            os._exit(1)  # the worker dies mid-run, its batch half done
        result = await super().complete(request, seed=seed)
        with open(self.log, "a") as handle:
            handle.write(json.dumps(["done", prompt]) + "\n")
        return result


def test_worker_killed_mid_run_repeats_no_finished_call(tmp_path: Path) -> None:
    recipe = write_global_recipe(tmp_path, 20)
    log = tmp_path / "calls.log"
    out = tmp_path / "ray"
    first = None
    # Ray restarts the actor and retries its task; the run may also give up.
    with contextlib.suppress(Exception):
        first = go(recipe, out, backend=KillingBackend(log), executor="ray", concurrency=1,
                   batch_size=4)
    assert (tmp_path / "calls.log.killed").exists()
    resumed = go(recipe, out, backend=KillingBackend(log), executor="ray", concurrency=1,
                 batch_size=4)
    assert resumed["status"] == "ok" and all(closes(s) for s in resumed["steps"])
    if first is not None and first["status"] == "ok":
        assert resumed["llm_calls"] == 0  # the first run finished everything after the retry
    events = [json.loads(x) for x in log.read_text().splitlines()]
    starts = [p for kind, p in events if kind == "start"]
    killed_at = [i for i, (kind, _) in enumerate(events) if kind == "start"][6]
    finished_before_kill = {p for kind, p in events[:killed_at] if kind == "done"}
    assert len(finished_before_kill) >= 5
    # Every prompt reached the server; none finished before the kill was asked again;
    # only the call in flight at the kill was repeated.
    assert len(set(starts)) == 20
    for prompt in finished_before_kill:
        assert starts.count(prompt) == 1, prompt
    assert len(starts) == 21 and starts.count(events[killed_at][1]) == 2
    local = go(recipe, tmp_path / "local", backend=ScriptedTestBackend(
        lambda request, seed: f"answer number {last_user_text(request)}"))
    assert ids(out / "data.jsonl") == ids(tmp_path / "local" / "data.jsonl")
    assert resumed["records"] == local["records"] > 0


LLM_RECIPE = """
name: ray-llm
seed: 5
sources:
  - {name: seeds, type: jsonl, path: SEEDS}
steps:
  - name: answer
    type: generate
    template: answer.jinja
    output: answer
sinks:
  - {type: jsonl, path: data.jsonl}
"""


def write_llm_recipe(tmp_path: Path, n: int) -> Path:
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"q": f"question {i}"}) + "\n" for i in range(n)))
    (tmp_path / "answer.jinja").write_text("Answer: {{ q }}")
    path = tmp_path / "ray-llm.yaml"
    path.write_text(LLM_RECIPE.replace("SEEDS", str(seeds)))
    return path


def question_number(request: dict) -> int:
    return int(str(request["messages"][-1]["content"]).split()[-1])


def test_budget_caps_all_actors_together_and_the_cli_exits_3(tmp_path: Path) -> None:
    """The real OpenAI-compatible HTTP path to a scripted server (a test double): with two
    actors, --budget-tokens caps the run's tokens (not each actor's), the run stops as a local
    one does (status stopped, exit 3), and a rerun finishes without repeating a finished call."""
    recipe = write_llm_recipe(tmp_path, 100)
    out = tmp_path / "ray"
    budget, actors, batch = 200, 2, 4
    with ScriptedOpenAIServer(lambda r: f"answer number {question_number(r)} here") as server:
        args = ["run", str(recipe), "--out", str(out), "--backend", f"openai:{server.base_url}",
                "--model", "scripted-model", "--executor", "ray", "--ray-actors", str(actors),
                "--batch-size", str(batch), "--concurrency", "1", "--quiet", "--no-report"]
        stopped = CliRunner().invoke(app, [*args, "--budget-tokens", str(budget)])
        assert stopped.exit_code == 3, stopped.output
        first = json.loads((out / "summary.json").read_text())
        assert first["status"] == "stopped" and first["stopped_reason"] == "budget_exhausted"
        assert all(closes(s) for s in first["steps"])
        spent = first["prompt_tokens"] + first["completion_tokens"]
        assert first["llm"]["budget_tokens_spent"] == spent  # the actors' counts, summed
        # Each request checks the shared total before it goes; at most the requests of one
        # batch per actor were already past the check when the total reached the budget.
        per_call = -(-spent // first["llm_calls"])
        assert budget <= spent <= budget + actors * batch * per_call, (spent, per_call)
        failed = rows(out / "failed.jsonl")
        assert failed and {r["error_class"] for r in failed} == {"BudgetExhausted"}
        assert len(failed) == first["failed"] == 100 - first["records"]
        # The same command without the cap finishes; no finished call is made again.
        resumed = CliRunner().invoke(app, args)
        assert resumed.exit_code == 0, resumed.output
        second = json.loads((out / "summary.json").read_text())
        assert second["status"] == "ok" and second["records"] == 100
        assert second["llm_calls"] == 100 - first["records"]
        done = server.completed_bodies()
        assert len(done) == 100 and set(done.values()) == {1}


def test_llm_block_counts_the_actors_retries_and_failures_as_a_local_run(tmp_path: Path) -> None:
    """summary.json's llm block on Ray sums the actors' clients: the same retries (by cause)
    and failed requests as a local run of the same input through the same faults (a fault
    proxy in front of a scripted OpenAI-compatible server: real HTTP, scripted answers)."""
    recipe = Recipe.load(write_llm_recipe(tmp_path, 24))

    def responder(request: dict) -> str:
        number = question_number(request)
        if number % 7 == 3:  # 3, 10, 17: refused for good (HTTP 400, not retried)
            raise ScriptedHTTPError(400, f"question {number} is refused")
        return f"answer number {number} here"

    llm = {}
    with ScriptedOpenAIServer(responder) as upstream:
        for executor in ("local", "ray"):
            # The first four requests fail once each, whichever item or actor sends them.
            plan = FaultPlan(first_n=["429", "500", "503", "reset"], retry_after=0.1)
            with FaultProxy(upstream.base_url, plan) as proxy:
                summary = go(recipe, tmp_path / executor, backend=f"openai:{proxy.base_url}",
                             model="scripted-model", batch_size=4, executor=executor,
                             ray_actors=2)
            assert summary["failed"] == 3 and summary["records"] == 21, executor
            llm[executor] = summary["llm"]
    local, on_ray = llm["local"], llm["ray"]
    assert local["retries"] == 4 and sum(local["retry_causes"].values()) == 4
    assert local["failed_requests"] == 3
    same = ("model", "calls", "retries", "retry_causes", "failed_requests", "failure_causes",
            "structured_repairs", "structured_failures", "budget_tokens_spent")
    assert {k: on_ray[k] for k in same} == {k: local[k] for k in same}
    assert on_ray["concurrency_decreases"] >= 1  # a 429/503 halved an actor's limit


def test_regenerated_items_match_local_on_ray(tmp_path: Path) -> None:
    """``--regenerate rejected``: RUN/review/resample.json bumps an item's sample on Ray as on a
    local run (the actors get the bumps): same record ids, the bumped one new (ScriptedTestBackend,
    a test double, answers with the seed in the text)."""
    recipe = Recipe.load(write_llm_recipe(tmp_path, 8))

    def seeded(request, seed) -> str:
        return f"answer to {last_user_text(request)} (seed {seed})"

    local, on_ray = tmp_path / "local", tmp_path / "ray"
    go(recipe, local, backend=ScriptedTestBackend(seeded), batch_size=4)
    before = ids(local / "data.jsonl")
    target = rows(local / "data.jsonl")[5]["_meta"]
    bumps = json.dumps([{"step": "answer", "parent": target["parents"][0], "bump": 2}])
    for run_dir in (local, on_ray):
        (run_dir / "review").mkdir(parents=True)
        (run_dir / "review" / "resample.json").write_text(bumps)
    again = go(recipe, local, backend=ScriptedTestBackend(seeded), batch_size=4)
    assert again["llm_calls"] == 1
    summary = go(recipe, on_ray, backend=ScriptedTestBackend(seeded), batch_size=4,
                 executor="ray", ray_actors=2)
    assert summary["status"] == "ok" and summary["records"] == 8 and summary["failed"] == 0
    assert ids(on_ray / "data.jsonl") == ids(local / "data.jsonl")
    changed = [i for i, (a, b) in enumerate(zip(before, ids(on_ray / "data.jsonl"),
                                                strict=True)) if a != b]
    assert changed == [5]
    redone = rows(on_ray / "data.jsonl")[5]
    assert redone["_meta"]["sample_index"] == 2 and redone["_meta"]["resample"] == 2
    assert redone == rows(local / "data.jsonl")[5]


# The LLM recipe above, with short answers (a real server generates them), kept when cut off
# at the cap (they are dropped by default).
NO_MODEL_RECIPE = LLM_RECIPE.replace("name: ray-llm", "name: ray-no-model").replace(
    "    output: answer\n", "    output: answer\n    max_tokens: 16\n    keep_truncated: true\n")


def test_openai_backend_without_model_on_ray_uses_the_served_model(llama_server,
                                                                   tmp_path: Path) -> None:
    """``--backend openai:URL`` with no ``--model`` on Ray, against a real llama_cpp.server:
    the driver's check() finds the served model, and the actors call that model too."""
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"q": f"Name a colour, {i}."}) + "\n" for i in range(3)))
    (tmp_path / "answer.jinja").write_text("{{ q }}")
    recipe = tmp_path / "no-model.yaml"
    recipe.write_text(NO_MODEL_RECIPE.replace("SEEDS", str(seeds)))
    out = tmp_path / "ray"
    done = CliRunner().invoke(app, [
        "run", str(recipe), "--out", str(out), "--backend", f"openai:{llama_server.base_url}",
        "--executor", "ray", "--limit", "2", "--batch-size", "1", "--quiet", "--no-report"])
    assert done.exit_code == 0, done.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["failed"] == 0 and summary["records"] == 2
    assert summary["llm_calls"] == 2
    records = rows(out / "data.jsonl")
    assert len(records) == 2
    assert {r["_meta"]["model"] for r in records} == {f"openai:{llama_server.model}"}
    assert not (out / "failed.jsonl").exists() or not rows(out / "failed.jsonl")


class Shout(MapStep):
    """A CPU-bound map (Ray gives its actors whole CPUs) with a deterministic output."""

    type_name = "test_ray_shout"
    cpu_bound = True
    Config = UpperConfig

    def process(self, record: dict[str, Any], ctx: ItemContext) -> Output:
        return Output(columns={"upper": record[self.config.column].upper() + "!"})


register_step(Shout)

CHAIN_RECIPE = """
name: ray-chain
seed: 2
sources:
  - {name: seeds, type: jsonl, path: SEEDS}
steps:
  - {name: first, type: test_ray_shout, column: text}
  - {name: unique, type: test_exact_dedup, input: seeds}
  - {name: second, type: test_ray_shout, column: upper, input: first}
  - {name: third, type: test_ray_shout, column: upper}
  - {name: fourth, type: test_ray_shout, column: upper}
  - {name: count, type: test_count_context, context: [unique]}
  - {name: count_first, type: test_count_context, input: unique, context: [first]}
sinks:
  - {type: jsonl, path: chain.jsonl, from: fourth}
  - {type: jsonl, path: data.jsonl, from: count}
  - {type: jsonl, path: other.jsonl, from: count_first}
"""


@pytest.mark.timeout(600)  # a guard: before pools were cut to fit, this run never finished
def test_a_chain_of_cpu_bound_steps_fits_two_cpus_and_actors_get_only_their_context(
        tmp_path: Path) -> None:
    """second -> third -> fourth stream at once (one chain). With a fixed pool of 2 actors of
    1 CPU per step they asked for 6 CPUs of the cluster's 2 and waited forever; now the chain
    is one pool of 1 to 2 actors asking for what the cluster has. Each actor holds only the
    context nodes its steps name (refs into the object store), not every node."""
    seeds = tmp_path / "seeds.jsonl"
    # 40 records, 30 distinct texts: unique keeps 30.
    seeds.write_text("".join(json.dumps({"text": f"item {i % 30}", "n": i}) + "\n"
                             for i in range(40)))
    path = tmp_path / "ray-chain.yaml"
    path.write_text(CHAIN_RECIPE.replace("SEEDS", str(seeds)))
    recipe = Recipe.load(path)
    executor = RayExecutor(recipe, tmp_path / "plan", actors=2)
    assert [[s.name for s in chain] for chain in executor.chains()] == [
        ["first"], ["second", "third", "fourth"], ["count"], ["count_first"]]
    local = go(recipe, tmp_path / "local", batch_size=8)
    on_ray = go(recipe, tmp_path / "ray", batch_size=8, executor="ray", ray_actors=2)
    assert on_ray["status"] == "ok" and all(closes(s) for s in on_ray["steps"])
    assert ids(tmp_path / "ray" / "chain.jsonl") == ids(tmp_path / "local" / "chain.jsonl")
    assert rows(tmp_path / "ray" / "chain.jsonl")[0]["upper"] == "ITEM 0!!!!"
    assert [(s["name"], s["in"], s["out"], s["dropped"]) for s in on_ray["steps"]] == \
        [(s["name"], s["in"], s["out"], s["dropped"]) for s in local["steps"]]
    # A local step sees every context node finished so far; an actor only those it names.
    counted = rows(tmp_path / "ray" / "data.jsonl")
    assert [r["_meta"]["parents"] for r in counted] == \
        [r["_meta"]["parents"] for r in rows(tmp_path / "local" / "data.jsonl")]
    assert len(counted) == 40 and {r["context_size"] for r in counted} == {30}
    other = rows(tmp_path / "ray" / "other.jsonl")
    assert len(other) == 30 and {r["context_size"] for r in other} == {40}


def test_actors_that_cannot_start_fail_the_run_with_a_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An LLM step whose actors each need a GPU, on a cluster with none: an error naming the
    cause after the start timeout, where the run used to wait forever."""
    monkeypatch.setenv("SYNTHLOOM_RAY_START_TIMEOUT_S", "5")
    recipe = Recipe.load(write_llm_recipe(tmp_path, 4))
    backend = ScriptedTestBackend(lambda request, seed: "an answer")
    backend.tensor_parallel_size = 1  # what a vLLM backend says: one GPU per engine
    with pytest.raises(SynthloomError, match="did not start within 5 s"):
        go(recipe, tmp_path / "ray", backend=backend, executor="ray")


def write_corpus(tmp_path: Path, n: int) -> dict[str, str]:
    docs = tmp_path / "docs"
    docs.mkdir()
    words = ("bread", "starter", "flour", "water", "salt", "oven", "crumb", "crust", "proof",
             "dough", "yeast", "rye")
    for i in range(n):
        body = " ".join(words[(i * 7 + j * 3) % len(words)] for j in range(60))
        (docs / f"{i:05d}.txt").write_text(f"Document {i} on {words[i % len(words)]}\n\n{body}")
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"instruction": f"How do I fix my {w} {i} when baking "
                                                        "bread at home this weekend?"}) + "\n"
                             for i, w in enumerate(words * 2)))
    return {"corpus": str(docs), "seeds": str(seeds), "target": "40", "embedder": "hashing"}


def test_the_flagship_on_500_documents_matches_the_local_run(tmp_path: Path) -> None:
    """synthquestions (both sources, context inputs corpus and attribute, global steps between
    chains) on 500 documents, scripted answers (ScriptedTestBackend, a test double): the same
    record ids as a local run in every output, accounting closed, status ok."""
    recipe = Recipe.load("synthquestions", write_corpus(tmp_path, 500))
    local = go(recipe, tmp_path / "local", backend=ScriptedTestBackend(scripted))
    on_ray = go(recipe, tmp_path / "ray", backend=ScriptedTestBackend(scripted),
                executor="ray", ray_actors=2)
    assert on_ray["status"] == local["status"] == "ok"
    assert all(closes(s) for s in on_ray["steps"])
    steps = {s["name"]: s for s in on_ray["steps"]}
    assert steps["synthesize"]["in"] == 500 and on_ray["records"] == local["records"] > 0
    for name in ("data.jsonl", "demos.jsonl", "preference.jsonl", "seeds.jsonl"):
        assert ids(tmp_path / "ray" / name) == ids(tmp_path / "local" / name), name
    same = ("in", "out", "failed", "dropped", "llm_calls")
    assert [[s[k] for k in same] for s in on_ray["steps"]] == \
        [[s[k] for k in same] for s in local["steps"]]


def test_the_per_item_error_policy_is_the_local_one_on_ray(tmp_path: Path) -> None:
    """The same failing step (tests/unit/test_executor_errors.py) in a Ray actor: one item's
    exception is that item's failure, a SynthloomError stops the run, as in process and in
    the process pool."""
    from tests.unit.test_executor_errors import Flaky, FlakyInPool, flaky_recipe, outcome

    for step in (Flaky, FlakyInPool):
        folder = tmp_path / step.type_name
        folder.mkdir()
        local = outcome(folder / "local", flaky_recipe(folder, step))
        on_ray = outcome(folder / "ray", flaky_recipe(folder, step), executor="ray")
        assert on_ray == local and local["counts"] == (20, 14, 6)
        fatal_local = outcome(folder / "fatal-local", flaky_recipe(folder, step, fatal_at=5))
        fatal_ray = outcome(folder / "fatal-ray", flaky_recipe(folder, step, fatal_at=5),
                            executor="ray")
        assert fatal_ray["status"] == fatal_local["status"] == "failed"
        assert fatal_ray["error"] == fatal_local["error"] == \
            ("BackendError", "the server went away at item 5")


def test_topics_fitted_on_a_sample_and_assigned_in_actors_match_local(tmp_path: Path) -> None:
    """cluster_topics above its sample_size on Ray: the fit in the driver on the id-hash
    sample, every record's nearest centroid in actors (scaleout.map_batches) - the same
    topics and labels per record as a local run, whose assignment runs in process."""
    themes = [("bread", "flour", "yeast", "oven"), ("engine", "piston", "fuel", "gear"),
              ("violin", "melody", "chord", "tempo")]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": f"q{i:04d}", "text": " ".join(
        themes[i % 3][(i + j) % 4] for j in range(6)) + f" n{i % 11}"}) + "\n"
        for i in range(300)))
    recipe = Recipe.from_dict({
        "name": "topics",
        "sources": [{"name": "rows", "type": "jsonl", "path": str(src)}],
        "steps": [{"name": "topics", "type": "cluster_topics", "embedder": "hashing",
                   "sample_size": 40, "n_topics": 3}],
    })
    local = go(recipe, tmp_path / "local")
    on_ray = go(recipe, tmp_path / "ray", executor="ray", ray_actors=2)
    assert on_ray["status"] == local["status"] == "ok"
    topic = lambda out: {r["id"]: (r["topic"], r["topic_label"])  # noqa: E731
                         for r in rows(tmp_path / out / "data.jsonl")}
    assert topic("ray") == topic("local") and len(topic("local")) == 300
    assert {t for t, _ in topic("local").values()} == {0, 1, 2}
