"""Exports from real run folders (the quickstart recipe on the ScriptedTestBackend, a test
double): every format loads back, reasoning is handled only as asked, columns are found by
name or mapped, skipped records are counted, and the dataset card tells the run's story."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthloom.api import RunOptions, run_recipe
from synthloom.cli import app
from synthloom.core.errors import SynthloomError
from synthloom.core.recipe import Recipe
from synthloom.export.formats import ColumnMap, ExportOptions, export
from synthloom.quality.preferences import PreferencePairs
from synthloom.sources.files import JsonlRows
from tests.support.scripted_backend import ScriptedTestBackend, last_user_text


def quickstart_responder(request, seed) -> str:
    text = last_user_text(request)
    if "Title:" in text:
        title = text.split("Title:", 1)[1].splitlines()[0].strip()
        return json.dumps({"instruction": f"What should I know about {title.lower()}?"})
    if "cover letter" in text:
        return "Short."  # under response_ok's 3 words: dropped by the recipe
    # Every other answer thinks first: the reasoning lands in response_reasoning.
    return f"<think>Plan for: {text[:30]}</think>Here is a clear answer about {text[28:60]}."


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "run"
    asyncio.run(run_recipe("quickstart", out, RunOptions(
        backend=ScriptedTestBackend(quickstart_responder), limit=12)))
    return out


def rows_of(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def records(run_dir: Path) -> list[dict]:
    return rows_of(run_dir / "data.jsonl")


def test_jsonl_keeps_columns_and_provenance(run_dir: Path, tmp_path: Path) -> None:
    result = export(run_dir, tmp_path / "x", ExportOptions(format="jsonl"))
    rows = rows_of(result.data_path)
    source = records(run_dir)
    assert result.rows == len(rows) == len(source) == 11
    # _meta is a JSON string, as in parquet: its keys vary by row and run (Arrow-stable).
    assert [json.loads(r["_meta"])["id"] for r in rows] == [r["_meta"]["id"] for r in source]
    assert rows[0]["response_reasoning"].startswith("Plan for:")
    no_meta = export(run_dir, tmp_path / "y", ExportOptions(format="jsonl", meta=False))
    assert all("_meta" not in r for r in rows_of(no_meta.data_path))


def test_parquet_loads_with_pyarrow(run_dir: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow not installed (extra: parquet)")
    result = export(run_dir, tmp_path / "x", ExportOptions(format="parquet"))
    table = pq.read_table(result.data_path)
    assert table.num_rows == 11
    assert {"instruction", "response", "response_reasoning", "_meta"} <= set(table.column_names)
    first = table.slice(0, 1).to_pylist()[0]
    assert json.loads(first["_meta"])["id"] == records(run_dir)[0]["_meta"]["id"]
    assert first["instruction"] == records(run_dir)[0]["instruction"]


def test_hf_save_to_disk_loads_back(run_dir: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="datasets not installed (extra: hf)")
    result = export(run_dir, tmp_path / "x", ExportOptions(format="hf"))
    dataset = datasets.load_from_disk(str(result.out_dir))
    assert len(dataset) == 11 and "instruction" in dataset.column_names
    assert dataset[0]["response"] == records(run_dir)[0]["response"]
    assert (result.out_dir / "README.md").is_file()


def test_alpaca_rows_and_llamafactory_entry(run_dir: Path, tmp_path: Path) -> None:
    result = export(run_dir, tmp_path / "x", ExportOptions(
        format="alpaca", columns=ColumnMap(system="Be brief."), reasoning="field"))
    rows = rows_of(result.data_path)
    source = records(run_dir)
    assert len(rows) == 11
    assert rows[0]["instruction"] == source[0]["instruction"]
    assert rows[0]["output"] == source[0]["response"]  # reasoning is not merged in
    assert rows[0]["reasoning"] == source[0]["response_reasoning"]
    assert rows[0]["input"] == "" and rows[0]["system"] == "Be brief."
    assert rows[0]["id"] == source[0]["_meta"]["id"]
    info = json.loads((result.out_dir / "dataset_info.json").read_text())
    assert info == {"quickstart": {"file_name": "train.jsonl", "columns": {
        "prompt": "instruction", "query": "input", "response": "output", "system": "system"}}}


def test_sharegpt_and_messages_shapes(run_dir: Path, tmp_path: Path) -> None:
    share = rows_of(export(run_dir, tmp_path / "s", ExportOptions(
        format="sharegpt", columns=ColumnMap(system="Be brief."), reasoning="field")).data_path)
    source = records(run_dir)
    turns = share[0]["conversations"]
    assert [t["from"] for t in turns] == ["system", "human", "gpt"]
    assert all(set(t) <= {"from", "value", "reasoning_content"} for t in turns)
    assert turns[1]["value"] == source[0]["instruction"]
    assert turns[2]["value"] == source[0]["response"]
    assert turns[2]["reasoning_content"] == source[0]["response_reasoning"]
    info = json.loads((tmp_path / "s" / "dataset_info.json").read_text())["quickstart"]
    assert info["formatting"] == "sharegpt" and info["tags"]["user_tag"] == "human"

    msgs = rows_of(export(run_dir, tmp_path / "m", ExportOptions(format="messages",
                                                                 reasoning="drop")).data_path)
    assert [m["role"] for m in msgs[0]["messages"]] == ["user", "assistant"]
    assert msgs[0]["messages"][1]["content"] == source[0]["response"]


@pytest.mark.parametrize("mode", ["field", "think-tags", "drop"])
def test_reasoning_modes(run_dir: Path, tmp_path: Path, mode: str) -> None:
    source = records(run_dir)[0]
    answer, thought = source["response"], source["response_reasoning"]
    msgs = rows_of(export(run_dir, tmp_path / "m", ExportOptions(
        format="messages", reasoning=mode)).data_path)[0]["messages"]
    alpaca = rows_of(export(run_dir, tmp_path / "a", ExportOptions(
        format="alpaca", reasoning=mode)).data_path)[0]
    raw = rows_of(export(run_dir, tmp_path / "j", ExportOptions(
        format="jsonl", reasoning=mode)).data_path)[0]
    if mode == "field":
        assert msgs[-1] == {"role": "assistant", "content": answer, "reasoning_content": thought}
        assert alpaca["output"] == answer and alpaca["reasoning"] == thought
        assert raw["response"] == answer and raw["response_reasoning"] == thought
    elif mode == "think-tags":
        tagged = f"<think>\n{thought}\n</think>\n\n{answer}"
        assert msgs[-1] == {"role": "assistant", "content": tagged}
        assert alpaca["output"] == tagged and "reasoning" not in alpaca
        assert raw["response"] == tagged and "response_reasoning" not in raw
    else:
        assert msgs[-1] == {"role": "assistant", "content": answer}
        assert alpaca["output"] == answer and "reasoning" not in alpaca
        assert "response_reasoning" not in raw and thought not in json.dumps(raw)


def test_dpo_from_a_preference_run(tmp_path: Path) -> None:
    rows = [{"question": f"Question {i}?", "answers": [f"good {i}", f"bad {i}", f"ok {i}"],
             "s": [9, 1, 5]} for i in range(3)]
    rows.append({"question": "tied?", "answers": ["x", "y"], "s": [2, 2]})
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = Recipe(name="prefs", sources=[JsonlRows(name="rows", path=str(source))],
                    steps=[PreferencePairs(name="pairs", prompt="question", responses="answers",
                                           score_column="s")])
    asyncio.run(run_recipe(recipe, tmp_path / "run", RunOptions(
        backend=ScriptedTestBackend())))
    result = export(tmp_path / "run", tmp_path / "dpo", ExportOptions(format="dpo"))
    dpo = rows_of(result.data_path)
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in dpo] == [
        (f"Question {i}?", f"good {i}", f"bad {i}") for i in range(3)]
    assert all(isinstance(r["id"], str) for r in dpo)
    info = json.loads((tmp_path / "dpo" / "dataset_info.json").read_text())["prefs"]
    assert info["ranking"] is True and info["columns"]["chosen"] == "chosen"
    card = (tmp_path / "dpo" / "README.md").read_text()
    assert "| pairs | map | 4 | 3 | 0 | 1 |" in card


def test_columns_found_by_name_or_mapped_and_missing_ones_named(tmp_path: Path) -> None:
    rows = [{"question": "What is 2+2?", "answer": "4", "sys": "Math tutor"},
            {"question": "Capital of Peru?", "answer": "", "sys": "Geography"},
            {"question": "Largest ocean?", "answer": "Pacific", "sys": "Geography"}]
    source = tmp_path / "qa.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = Recipe(name="qa", sources=[JsonlRows(name="rows", path=str(source))])
    asyncio.run(run_recipe(recipe, tmp_path / "run", RunOptions()))
    result = export(tmp_path / "run", tmp_path / "out", ExportOptions(
        format="sharegpt", columns=ColumnMap(system_column="sys")))
    out = rows_of(result.data_path)
    assert [[t["value"] for t in r["conversations"]] for r in out] == [
        ["Math tutor", "What is 2+2?", "4"], ["Geography", "Largest ocean?", "Pacific"]]
    assert result.skipped == {"answer missing or empty": 1} and result.read == 3
    assert "skipped 1 (1× answer missing or empty)" in (tmp_path / "out" / "README.md").read_text()
    mapped = export(tmp_path / "run", tmp_path / "m", ExportOptions(
        format="alpaca", columns=ColumnMap(instruction="answer", response="question")))
    assert rows_of(mapped.data_path)[0]["output"] == "What is 2+2?"
    with pytest.raises(SynthloomError, match="no chosen column found .* pass --chosen-column"):
        export(tmp_path / "run", tmp_path / "d", ExportOptions(format="dpo"))
    with pytest.raises(SynthloomError, match="unknown format 'csv'"):
        export(tmp_path / "run", tmp_path / "c", ExportOptions(format="csv"))


def test_messages_column_and_dropped_rows_export(tmp_path: Path) -> None:
    convo = [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"},
             {"from": "human", "value": "bye"}, {"from": "gpt", "value": "ciao"}]
    source = tmp_path / "c.jsonl"
    source.write_text(json.dumps({"conversations": convo}) + "\n")
    recipe = Recipe(name="chat", sources=[JsonlRows(name="rows", path=str(source))])
    asyncio.run(run_recipe(recipe, tmp_path / "run", RunOptions()))
    [row] = rows_of(export(tmp_path / "run", tmp_path / "m",
                           ExportOptions(format="messages")).data_path)
    assert [(m["role"], m["content"]) for m in row["messages"]] == [
        ("user", "hi"), ("assistant", "hello"), ("user", "bye"), ("assistant", "ciao")]


def test_dropped_records_are_exportable(run_dir: Path, tmp_path: Path) -> None:
    result = export(run_dir, tmp_path / "d", ExportOptions(format="jsonl", file="dropped.jsonl"))
    [row] = rows_of(result.data_path)
    assert row["response"] == "Short." and row["_dropped_reason"].startswith("response_ok: ")


def test_dataset_card_has_recipe_models_funnel_and_licence(run_dir: Path, tmp_path: Path) -> None:
    export(run_dir, tmp_path / "x", ExportOptions(format="messages"))
    card = (tmp_path / "x" / "README.md").read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert card.startswith("---\nlicense: other\n")
    assert "size_categories:\n- n<1K" in card and "path: train.jsonl" in card
    assert "by the recipe `quickstart`: Bundled sample documents" in card
    for step in summary["steps"]:
        assert f"| {step['name']} | {step['kind']} | {step['in']} | {step['out']} |" in card
    assert "`scripted:scripted`: 11 exported records" in card
    assert "```yaml\nname: quickstart" in card
    assert "## Licence notes" in card and "`01_sourdough_starter_care.txt`" in card
    assert "SmolLM2" not in card  # no embedded-model warning for another model


def test_cli_export_and_errors(run_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["export", str(run_dir), "--format", "dpo", "--out",
                               str(tmp_path / "d")])
    assert done.exit_code == 2 and "pass --chosen-column" in done.output
    assert "Traceback" not in done.output
    done = runner.invoke(app, ["export", str(run_dir), "--format", "sharegpt", "--out",
                               str(tmp_path / "s"), "--reasoning", "think-tags"])
    assert done.exit_code == 0, done.output
    assert "11 rows (sharegpt)" in done.output
    first = rows_of(tmp_path / "s" / "train.jsonl")[0]["conversations"][-1]["value"]
    assert first.startswith("<think>\nPlan for:")
    done = runner.invoke(app, ["export", str(run_dir), "--format", "hf", "--out",
                               str(tmp_path / "h"), "--push-to-hub", "me/data",
                               "--token-env", "SYNTHLOOM_TEST_NO_SUCH_TOKEN"])
    assert done.exit_code == 2 and "SYNTHLOOM_TEST_NO_SUCH_TOKEN" in done.output
    assert not (tmp_path / "h").exists()  # nothing written, nothing pushed
    done = runner.invoke(app, ["export", str(run_dir), "--format", "messages"])
    assert done.exit_code == 0, done.output
    assert len(rows_of(run_dir / "export" / "messages" / "train.jsonl")) == 11


def run_rows(tmp_path: Path, name: str, rows: list[dict], sinks: dict[str, list[dict]]
             | None = None) -> Path:
    """A run folder of ``rows`` (a JSONL source, no steps), plus extra sink files."""
    source = tmp_path / f"{name}.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = Recipe(name=name, sources=[JsonlRows(name="rows", path=str(source))])
    out = tmp_path / f"run-{name}"
    asyncio.run(run_recipe(recipe, out, RunOptions()))
    for file, extra in (sinks or {}).items():
        (out / file).write_text("".join(json.dumps(r) + "\n" for r in extra))
    return out


def test_two_exports_into_one_folder_get_their_own_files_and_entries(run_dir: Path,
                                                                     tmp_path: Path) -> None:
    logic = run_rows(tmp_path, "logic", [{"question": "2+2?", "answer": "4"}])
    out = tmp_path / "out"
    first = export(run_dir, out, ExportOptions(format="alpaca"))
    second = export(logic, out, ExportOptions(format="alpaca"))
    third = export(run_dir, out, ExportOptions(format="sharegpt"))
    assert first.data_path.name == "train.jsonl" and second.data_path.name == "logic.jsonl"
    assert third.key == "quickstart-sharegpt" and "pass --name" in third.warnings[-1]
    info = json.loads((out / "dataset_info.json").read_text())
    assert {k: v["file_name"] for k, v in info.items()} == {
        "quickstart": "train.jsonl", "logic": "logic.jsonl",
        "quickstart-sharegpt": "quickstart-sharegpt.jsonl"}
    assert len(rows_of(out / "train.jsonl")) == 11 and len(rows_of(out / "logic.jsonl")) == 1
    again = export(run_dir, out, ExportOptions(format="alpaca"))  # a re-export replaces its own
    assert again.data_path == first.data_path and not again.warnings
    card = (out / "README.md").read_text()
    front = card.split("---\n")[1]
    assert "config_name: quickstart\n  data_files:\n  - split: train\n    path: train.jsonl\n" \
        "  default: true" in front
    assert "path: logic.jsonl" in front and "path: quickstart-sharegpt.jsonl" in front
    assert "num_examples: 11" in front  # datasets' cache key changes with a re-export's size


def test_an_hf_export_never_overwrites_llamafactory_dataset_info(run_dir: Path,
                                                                  tmp_path: Path) -> None:
    pytest.importorskip("datasets", reason="datasets not installed (extra: hf)")
    out = tmp_path / "out"
    export(run_dir, out, ExportOptions(format="alpaca"))
    hf = export(run_dir, out, ExportOptions(format="hf"))
    assert hf.data_path == out / "quickstart-hf" and (hf.data_path / "state.json").is_file()
    assert "quickstart" in json.loads((out / "dataset_info.json").read_text())
    alone = export(run_dir, tmp_path / "hf", ExportOptions(format="hf"))
    assert alone.data_path == tmp_path / "hf"
    with pytest.raises(SynthloomError, match="save_to_disk"):
        export(run_dir, tmp_path / "hf", ExportOptions(format="alpaca"))


def test_system_column_is_validated_and_takes_a_dotted_path(tmp_path: Path) -> None:
    rows = [{"question": "Q1?", "response": "A1", "system_prompt": {"text": "Be exact."}},
            {"question": "Q2?", "response": "A2", "system_prompt": {"text": 3}}]
    run = run_rows(tmp_path, "orca", rows)
    with pytest.raises(SynthloomError, match=r"holds an object.*--system-column "
                                             r"system_prompt\.text"):
        export(run, tmp_path / "a", ExportOptions(
            format="alpaca", columns=ColumnMap(system_column="system_prompt")))
    with pytest.raises(SynthloomError, match="--system-column sys: no text there"):
        export(run, tmp_path / "b", ExportOptions(
            format="alpaca", columns=ColumnMap(system_column="sys")))
    assert not (tmp_path / "b" / "dataset_info.json").exists()
    result = export(run, tmp_path / "c", ExportOptions(
        format="alpaca", columns=ColumnMap(system_column="system_prompt.text")))
    assert [r.get("system") for r in rows_of(result.data_path)] == ["Be exact.", None]
    assert result.warnings == ["1 of 2 rows have no system prompt (no text at --system-column "
                               "system_prompt.text)"]
    info = json.loads((tmp_path / "c" / "dataset_info.json").read_text())["orca"]
    assert info["columns"]["system"] == "system"


def test_trl_conversational_formats(run_dir: Path, tmp_path: Path) -> None:
    source = records(run_dir)[0]
    [row, *_] = rows_of(export(run_dir, tmp_path / "pc", ExportOptions(
        format="prompt-completion", columns=ColumnMap(system="Be brief."),
        reasoning="field")).data_path)
    assert row["prompt"] == [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": source["instruction"]}]
    assert row["completion"] == [{"role": "assistant", "content": source["response"],
                                  "reasoning_content": source["response_reasoning"]}]
    prefs = run_rows(tmp_path, "prefs", [{"prompt": "P?", "chosen": "good", "rejected": "bad",
                                          "chosen_reasoning": "why"}])
    [pair] = rows_of(export(prefs, tmp_path / "dc", ExportOptions(
        format="dpo-chat", columns=ColumnMap(system="S"))).data_path)
    assert pair["prompt"] == [{"role": "system", "content": "S"},
                              {"role": "user", "content": "P?"}]
    assert pair["chosen"] == [{"role": "assistant", "content": "<think>\nwhy\n</think>\n\ngood"}]
    assert pair["rejected"] == [{"role": "assistant", "content": "bad"}]
    assert not (tmp_path / "dc" / "dataset_info.json").exists()  # LLaMA-Factory reads `dpo`


def test_reasoning_auto_puts_it_where_the_trainer_reads_it(run_dir: Path,
                                                           tmp_path: Path) -> None:
    source = records(run_dir)[0]
    tagged = f"<think>\n{source['response_reasoning']}\n</think>\n\n{source['response']}"
    alpaca = export(run_dir, tmp_path / "a", ExportOptions(format="alpaca"))
    assert alpaca.reasoning == "think-tags"
    assert rows_of(alpaca.data_path)[0]["output"] == tagged
    share = rows_of(export(run_dir, tmp_path / "s", ExportOptions(
        format="sharegpt")).data_path)[0]["conversations"]
    assert share[-1] == {"from": "gpt", "value": tagged}
    raw = rows_of(export(run_dir, tmp_path / "j", ExportOptions(format="jsonl")).data_path)[0]
    assert raw["response"] == source["response"]  # raw keeps the column


def test_raw_exports_keep_text_out_of_trls_default_field(run_dir: Path, tmp_path: Path) -> None:
    raw = export(run_dir, tmp_path / "j", ExportOptions(format="jsonl"))
    row = rows_of(raw.data_path)[0]
    assert "text" not in row and row["source_text"] == records(run_dir)[0]["text"]
    assert "`source_text`" in (tmp_path / "j" / "README.md").read_text()
    docs = run_rows(tmp_path, "docs", [{"text": "A document to pretrain on."}])
    assert "text" in rows_of(export(docs, tmp_path / "d", ExportOptions(
        format="jsonl")).data_path)[0]  # no instruction/answer: text is the content


def test_arrow_exports_have_one_type_per_column_whatever_the_rows(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow not installed (extra: parquet)")
    mixed = run_rows(tmp_path, "a", [{"question": "q", "answer": "a", "statements": ["x", 1],
                                      "empty": None}])
    plain = run_rows(tmp_path, "b", [{"question": "q", "answer": "a", "statements": ["x", "y"],
                                      "empty": None}])
    schemas = [pq.read_table(export(run, tmp_path / f"out-{run.name}", ExportOptions(
        format="parquet")).data_path).schema for run in (mixed, plain)]
    assert schemas[0] == schemas[1]
    assert str(schemas[0].field("statements").type) == "string"
    assert str(schemas[0].field("empty").type) == "string"


def test_default_columns_prefer_what_the_recipe_generated(tmp_path: Path) -> None:
    star = run_rows(tmp_path, "star", [{"question": "2+3?", "answer": "5 #### 5",
                                        "rationale": "2 plus 3 is 5.", "predicted": "5"}])
    [row] = rows_of(export(star, tmp_path / "s", ExportOptions(format="alpaca")).data_path)
    assert row["output"] == "2 plus 3 is 5."
    arith = run_rows(tmp_path, "arith", [{"question": "9-7?", "answer": "2",
                                          "scratchpad": "9 - 7 = 2\nAnswer: 2"}])
    [row] = rows_of(export(arith, tmp_path / "a", ExportOptions(format="alpaca")).data_path)
    assert row["output"].startswith("9 - 7 = 2")


def test_a_missing_column_error_names_the_file_that_has_it(tmp_path: Path) -> None:
    run = run_rows(tmp_path, "sq", [{"instruction": "Q?", "response": "A"}], sinks={
        "preference.jsonl": [{"prompt": "Q?", "chosen": "A", "rejected": "B"}]})
    with pytest.raises(SynthloomError, match="preference.jsonl has the columns it needs: "
                                             "pass --file preference.jsonl"):
        export(run, tmp_path / "d", ExportOptions(format="dpo"))
    done = export(run, tmp_path / "d", ExportOptions(format="dpo", file="preference.jsonl"))
    assert done.rows == 1


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_two_logic_exports_of_different_rows_load_and_concatenate(tmp_path: Path,
                                                                  fmt: str) -> None:
    """Logic records mix kinds (knights_knaves' ``statements``: strings and numbers in nested
    lists; ``sequence``: a list in one task, text in another): each export loads with
    ``datasets`` and two exports of other rows of the recipe concatenate (issue 23 item 8)."""
    datasets = pytest.importorskip("datasets", reason="datasets not installed (extra: hf)")
    datasets.disable_progress_bars()
    loaded = []
    for seed, tasks in ((1, "knights_knaves,sequence,zebra"), (2, "knights_knaves,sequence")):
        run = tmp_path / f"logic-{seed}"
        asyncio.run(run_recipe("logic", run, RunOptions(overrides={
            "count": "3", "tasks": tasks, "seed": str(seed)})))
        done = export(run, tmp_path / f"out-{seed}", ExportOptions(format=fmt))
        loaded.append(datasets.load_dataset(fmt if fmt == "parquet" else "json", split="train",
                                            data_files=str(done.data_path),
                                            cache_dir=str(tmp_path / "cache")))
    first, second = loaded
    assert first.features["statements"] == datasets.Value("string")
    both = datasets.concatenate_datasets([first, second])
    assert len(both) == len(first) + len(second) == 15
    statements = [json.loads(s) for s in both["statements"] if s]
    assert statements and all(isinstance(s, list) for s in statements)
    if fmt == "jsonl":
        assert isinstance(json.loads(both[0]["_meta"])["id"], str)


def test_jsonl_columns_of_mixed_kinds_become_text_in_every_row(tmp_path: Path) -> None:
    run = run_rows(tmp_path, "mixed", [
        {"question": "a", "answer": 4, "score": 1, "tags": ["x", 1], "turns": None},
        {"question": "b", "answer": "four", "score": 2.5, "tags": {"k": 1}, "turns": None}])
    rows = rows_of(export(run, tmp_path / "j", ExportOptions(format="jsonl")).data_path)
    assert [r["answer"] for r in rows] == ["4", "four"]  # number and text: text everywhere
    assert [r["score"] for r in rows] == [1, 2.5]  # numbers stay numbers
    assert [r["tags"] for r in rows] == ['["x", 1]', '{"k": 1}']  # nested: JSON strings
    assert [r["turns"] for r in rows] == [None, None]
