"""The tool-use exports read by LLaMA-Factory itself (issue 24 §4): its own data pipeline
(``llamafactory.data.get_dataset``: the ``dataset_info.json`` entry, its ShareGPT and OpenAI
converters, the ``tools`` column, the ``qwen`` template's tool formatting, SFT tokenization)
turns a real apigen run's ``sharegpt`` and ``messages`` exports, and an agent trajectory with
results and answers, into training rows holding the offered tools, every call (in the trained
part) and every result (``<tool_response>``, not trained on). The tokenizer is a byte-level
BPE trained here on the run's text (offline).

LLaMA-Factory is not a test dependency (docs/export.md says why: 0.9.5 pins datasets<=4.0.0,
trl<=0.24 and needs torchaudio, which has no wheel for this project's torch), so this module
skips where ``llamafactory.data`` does not import."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from synthloom.export.formats import ExportOptions, export
from tests.unit.test_export_tooluse import apigen_run, record_calls

pytestmark = pytest.mark.integration

# ImportError too: LLaMA-Factory refuses to import beside versions outside its pins.
lf_data = pytest.importorskip(
    "llamafactory.data", exc_type=ImportError, reason="llamafactory not importable (pip "
    "install llamafactory; 0.9.5 also needs torchaudio built for the installed torch)")
lf_hparams = pytest.importorskip("llamafactory.hparams", exc_type=ImportError)
transformers = pytest.importorskip("transformers", reason="transformers not installed")
tokenizers = pytest.importorskip("tokenizers", reason="tokenizers not installed")

TOOL_CALL = re.compile(r"<tool_call>\n(.*?)\n</tool_call>", re.DOTALL)
TOOL_RESPONSE = re.compile(r"<tool_response>\n(.*?)\n</tool_response>", re.DOTALL)
IGNORE = -100  # LLaMA-Factory's IGNORE_INDEX: label of a token not trained on


def trajectory() -> dict[str, Any]:
    """An agent-trajectory record: two parallel calls and their results, an answer, a second
    request, a call, its result, the final answer (arguments as JSON text, as agents write)."""
    def call(i: int, args: dict[str, Any]) -> dict[str, Any]:
        return {"id": f"c{i}", "type": "function",
                "function": {"name": "add", "arguments": json.dumps(args)}}

    tools = [{"type": "function", "function": {
        "name": "add", "description": "Add two numbers.", "parameters": {
            "type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"]}}}]
    messages = [
        {"role": "user", "content": "What are 1+2 and 3+4?"},
        {"role": "assistant", "content": None,
         "tool_calls": [call(1, {"a": 1, "b": 2}), call(2, {"a": 3, "b": 4})]},
        {"role": "tool", "tool_call_id": "c1", "name": "add", "content": "3"},
        {"role": "tool", "tool_call_id": "c2", "name": "add", "content": "7"},
        {"role": "assistant", "content": "They are 3 and 7."},
        {"role": "user", "content": "And 10+20?"},
        {"role": "assistant", "content": None, "tool_calls": [call(3, {"a": 10, "b": 20})]},
        {"role": "tool", "tool_call_id": "c3", "name": "add", "content": "30"},
        {"role": "assistant", "content": "It is 30."}]
    return {"messages": messages, "tools": tools}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    agent = tmp_path_factory.mktemp("agent")
    (agent / "data.jsonl").write_text(json.dumps(trajectory()) + "\n")
    return {"apigen": apigen_run(tmp_path_factory.mktemp("apigen")), "agent": agent}


@pytest.fixture(scope="module")
def tokenizer_dir(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE (every byte encodable) trained on the runs' text, saved for
    LLaMA-Factory's ``ModelArguments``."""
    bpe = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = tokenizers.decoders.ByteLevel()
    texts = [line for run in runs.values() for line in
             (run / "data.jsonl").read_text().splitlines()]
    bpe.train_from_iterator(texts, tokenizers.trainers.BpeTrainer(
        vocab_size=500, special_tokens=["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token="<pad>", unk_token="<unk>", eos_token="<|im_end|>")
    out = tmp_path_factory.mktemp("tokenizer")
    tokenizer.save_pretrained(out)
    return out


def read_with_llamafactory(folder: Path, name: str, tokenizer_dir: Path, tmp_path: Path
                           ) -> list[dict[str, str]]:
    """The dataset ``name`` of ``folder``'s dataset_info.json through LLaMA-Factory's SFT
    data pipeline: per row, the whole text and the trained part (labels) decoded."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(tokenizer_dir)
    data_args = lf_hparams.DataArguments(template="qwen", dataset=name, dataset_dir=str(folder),
                                         cutoff_len=8192, overwrite_cache=True)
    model_args = lf_hparams.ModelArguments(model_name_or_path=str(tokenizer_dir))
    training_args = transformers.Seq2SeqTrainingArguments(output_dir=str(tmp_path / "lf"),
                                                          report_to=[])
    template = lf_data.get_template_and_fix_tokenizer(tokenizer, data_args)
    module = lf_data.get_dataset(template, model_args, data_args, training_args, stage="sft",
                                 tokenizer=tokenizer)
    return [{"text": tokenizer.decode(row["input_ids"]),
             "trained": tokenizer.decode([t for t in row["labels"] if t != IGNORE])}
            for row in module["train_dataset"]]


def calls_in(text: str) -> list[tuple[str, Any]]:
    return [(c["name"], c["arguments"]) for c in map(json.loads, TOOL_CALL.findall(text))]


@pytest.mark.parametrize("fmt", ["sharegpt", "messages"])
def test_llamafactory_reads_the_apigen_export(fmt: str, runs: dict[str, Path],
                                              tokenizer_dir: Path, tmp_path: Path) -> None:
    run = runs["apigen"]
    records = [json.loads(x) for x in (run / "data.jsonl").read_text().splitlines()]
    result = export(run, tmp_path / "out", ExportOptions(format=fmt))
    rows = read_with_llamafactory(result.out_dir, result.key, tokenizer_dir, tmp_path)
    assert len(rows) == len(records)  # none skipped as "abnormal" by its converter
    for record, row in zip(records, rows, strict=True):
        assert record["query"] in row["text"]
        for tool in record["tools"]:  # the tools column, in the template's system turn
            assert json.dumps(tool, ensure_ascii=False) in row["text"]
        # The calls are the trained part, parsed back as the record's (parallel ones too).
        assert calls_in(row["trained"]) == record_calls(record)
        if not record["tool_calls"]:  # irrelevance: the answer in words is trained
            assert record["answer"] in row["trained"]


@pytest.mark.parametrize("fmt", ["sharegpt", "messages"])
def test_llamafactory_reads_observations_and_answers(fmt: str, runs: dict[str, Path],
                                                     tokenizer_dir: Path,
                                                     tmp_path: Path) -> None:
    result = export(runs["agent"], tmp_path / "out", ExportOptions(format=fmt))
    [row] = read_with_llamafactory(result.out_dir, result.key, tokenizer_dir, tmp_path)
    assert calls_in(row["trained"]) == [("add", {"a": 1, "b": 2}), ("add", {"a": 3, "b": 4}),
                                        ("add", {"a": 10, "b": 20})]
    assert "They are 3 and 7." in row["trained"] and "It is 30." in row["trained"]
    # Every result reaches the model as a tool response, in order, and is not trained on:
    # LLaMA-Factory's OpenAI converter gives each parallel result its own (as Qwen's template
    # does); a ShareGPT step has one observation, so both results are one JSON list there.
    responses = [json.loads(r) for r in TOOL_RESPONSE.findall(row["text"])]
    assert responses == ([[3, 7], 30] if fmt == "sharegpt" else [3, 7, 30])
    assert "<tool_response>" not in row["trained"]
