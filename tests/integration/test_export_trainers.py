"""The consumers read the exports as users expect: TRL's SFTTrainer and DPOTrainer train two
steps on a tiny randomly initialised Llama (built here, no hub: a byte-level BPE tokenizer
trained in the test, with a ChatML chat template) from the exports of real runs, and every
export loads with ``datasets`` by file and by folder (``load_dataset(EXPORT_DIR)``).

Runs: quickstart on the ScriptedTestBackend (answers with ``<think>`` reasoning, a test double
of the model), a preference run (``preference_pairs`` with given answers and scores), and the
logic and arithmetic recipes (tool-only, no model).

LLaMA-Factory is not installed (it pulls torchaudio): its side is checked against its
documented dataset_info.json schema (columns/tags/formatting for sharegpt and alpaca,
``ranking: true`` for preference data), and every entry's file must be that export's own file.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.recipe import Recipe
from synthloom.export.formats import ColumnMap, ExportOptions, ExportResult, export
from synthloom.quality.preferences import PreferencePairs
from synthloom.sources.files import JsonlRows
from tests.support.scripted_backend import ScriptedTestBackend
from tests.unit.test_export_formats import quickstart_responder

pytestmark = pytest.mark.integration

datasets = pytest.importorskip("datasets", reason="datasets not installed (extra: hf)")
pytest.importorskip("pyarrow", reason="pyarrow not installed (extra: parquet)")
torch = pytest.importorskip("torch", reason="torch not installed (extra: reward)")
transformers = pytest.importorskip("transformers", reason="transformers not installed")
trl = pytest.importorskip("trl", reason="trl not installed (extra: test)")
tokenizers = pytest.importorskip("tokenizers", reason="tokenizers not installed")

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
          "{% if m.get('reasoning_content') %}<think>\n{{ m['reasoning_content'] }}\n</think>\n\n"
          "{% endif %}{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SYSTEM = "You are a careful assistant."


def rows_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("trainers")
    asyncio.run(run_recipe("quickstart", root / "quickstart", RunOptions(
        backend=ScriptedTestBackend(quickstart_responder), limit=8)))
    rows = [{"question": f"Which fruit is number {i}?", "answers": [
        f"Fruit {i} is a ripe mango, sweet and golden.", f"no idea {i}", f"maybe {i}"],
        "s": [9, 1, 5]} for i in range(6)]
    source = root / "prefs.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = Recipe(name="prefs", sources=[JsonlRows(name="rows", path=str(source))],
                    steps=[PreferencePairs(name="pairs", prompt="question", responses="answers",
                                           score_column="s")])
    asyncio.run(run_recipe(recipe, root / "prefs", RunOptions(backend=ScriptedTestBackend())))
    asyncio.run(run_recipe("logic", root / "logic", RunOptions(
        overrides={"count": "1", "tasks": "caesar,knights_knaves,game24"})))
    asyncio.run(run_recipe("arithmetic", root / "arithmetic", RunOptions(overrides={"count": "6"})))
    return {p.name: p for p in root.iterdir() if p.is_dir()}


@pytest.fixture(scope="module")
def tokenizer(runs: dict[str, Path]) -> Any:
    """A byte-level BPE trained on the runs' own text (offline), with a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    texts = [json.dumps(r) for run in runs.values() for r in rows_of(run / "data.jsonl")]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token="<pad>", unk_token="<unk>", eos_token="<|im_end|>",
        bos_token="<|im_start|>")
    tok.chat_template = CHATML
    return tok


def tiny_model(tokenizer: Any) -> Any:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id)
    return transformers.LlamaForCausalLM(config)


def common_args(out: Path) -> dict[str, Any]:
    return {"output_dir": str(out), "max_steps": 2, "per_device_train_batch_size": 2,
            "learning_rate": 1e-3, "report_to": [], "save_strategy": "no", "logging_steps": 1,
            "use_cpu": True, "disable_tqdm": True, "seed": 0}


def load_both(result: ExportResult) -> Any:
    """The export by file and by folder; both must give the same rows."""
    kind = {"parquet": "parquet", "hf": "arrow"}.get(result.format, "json")
    if result.format == "hf":
        files = sorted(str(p) for p in result.data_path.glob("data-*.arrow"))
    else:
        files = [str(result.data_path)]
    by_file = datasets.load_dataset(kind, data_files=files, split="train")
    if result.data_path == result.out_dir:  # an hf export alone in its folder: save_to_disk's
        with pytest.raises(ValueError, match="load_from_disk"):  # datasets refuses, loudly
            datasets.load_dataset(str(result.out_dir))
        by_folder = datasets.load_from_disk(str(result.out_dir))
    else:
        by_folder = datasets.load_dataset(str(result.out_dir), split="train")
    assert by_folder.to_list() == by_file.to_list()
    assert len(by_file) == result.rows > 0
    return by_folder


def test_sft_on_messages_and_prompt_completion(runs: dict[str, Path], tokenizer: Any,
                                               tmp_path: Path) -> None:
    for fmt in ("messages", "prompt-completion"):
        result = export(runs["quickstart"], tmp_path / fmt, ExportOptions(
            format=fmt, columns=ColumnMap(system=SYSTEM)))
        dataset = load_both(result)
        trainer = trl.SFTTrainer(
            model=tiny_model(tokenizer), processing_class=tokenizer, train_dataset=dataset,
            args=trl.SFTConfig(**common_args(tmp_path / f"sft-{fmt}"), max_length=512))
        # What the trainer tokenized: the system prompt, the user's instruction, and the
        # answer with its reasoning (the chat template applied), not a system prompt alone.
        first = tokenizer.decode(trainer.train_dataset[0]["input_ids"])
        record = rows_of(runs["quickstart"] / "data.jsonl")[0]
        assert SYSTEM in first and record["instruction"] in first
        assert record["response"] in first and record["response_reasoning"] in first
        assert first.index(record["response_reasoning"]) < first.index(record["response"])
        if fmt == "prompt-completion":  # the loss falls on the answer only
            labels = trainer.train_dataset[0]["labels"]
            trained = tokenizer.decode([t for t in labels if t != -100])
            assert record["response"] in trained and record["instruction"] not in trained
        out = trainer.train()
        assert out.global_step == 2 and out.training_loss > 0


def test_dpo_on_the_conversational_preference_export(runs: dict[str, Path], tokenizer: Any,
                                                     tmp_path: Path) -> None:
    # --for trl chooses the conversational preference format for preference records.
    result = export(runs["prefs"], tmp_path / "dpo", ExportOptions(
        target="trl", columns=ColumnMap(system=SYSTEM)))
    assert result.format == "dpo-chat"
    dataset = load_both(result)
    assert dataset[0]["prompt"] == [{"role": "system", "content": SYSTEM},
                                    {"role": "user", "content": "Which fruit is number 0?"}]
    trainer = trl.DPOTrainer(  # the reference model is built here too (no hub to load it from)
        model=tiny_model(tokenizer), ref_model=tiny_model(tokenizer), processing_class=tokenizer,
        train_dataset=dataset,
        args=trl.DPOConfig(**common_args(tmp_path / "dpo-train"), max_length=256))
    first = trainer.train_dataset[0]
    prompt = tokenizer.decode(first["prompt_ids"])
    assert SYSTEM in prompt and "<|im_start|>user" in prompt  # the chat template was applied
    assert "ripe mango" in tokenizer.decode(first["chosen_ids"])
    out = trainer.train()
    assert out.global_step == 2


def test_sft_on_raw_exports_does_not_train_on_the_source_text(runs: dict[str, Path],
                                                              tmp_path: Path) -> None:
    """jsonl/parquet/hf keep every column, but not under ``text``: TRL's default text field
    would train on the source document (or crash on logic's mostly empty one)."""
    for run in ("quickstart", "logic"):
        for fmt in ("jsonl", "parquet", "hf"):
            result = export(runs[run], tmp_path / run / fmt, ExportOptions(format=fmt))
            dataset = load_both(result)
            assert "text" not in dataset.column_names and "source_text" in dataset.column_names


def test_every_export_loads_by_file_and_by_folder(runs: dict[str, Path], tmp_path: Path) -> None:
    for fmt in ("alpaca", "sharegpt", "messages", "prompt-completion"):
        for run in ("quickstart", "logic", "arithmetic"):
            load_both(export(runs[run], tmp_path / fmt / run, ExportOptions(format=fmt)))
    for fmt in ("jsonl", "parquet", "hf"):  # quickstart's and logic's: the raw-text test
        load_both(export(runs["arithmetic"], tmp_path / fmt, ExportOptions(format=fmt)))
    for fmt in ("dpo", "dpo-chat"):
        load_both(export(runs["prefs"], tmp_path / fmt, ExportOptions(format=fmt)))


def test_two_runs_in_one_folder_keep_their_own_rows(runs: dict[str, Path],
                                                    tmp_path: Path) -> None:
    out = tmp_path / "shared"
    first = export(runs["quickstart"], out, ExportOptions(format="alpaca"))
    logic = export(runs["logic"], out, ExportOptions(format="alpaca"))
    again = export(runs["quickstart"], out, ExportOptions(format="alpaca"))
    assert again.data_path == first.data_path != logic.data_path
    info = json.loads((out / "dataset_info.json").read_text())
    assert {k: v["file_name"] for k, v in info.items()} == {
        "quickstart": first.data_path.name, "logic": logic.data_path.name}
    quick = datasets.load_dataset(str(out), "quickstart", split="train")
    assert len(quick) == first.rows and quick[0]["id"] == rows_of(
        runs["quickstart"] / "data.jsonl")[0]["_meta"]["id"]
    assert len(datasets.load_dataset(str(out), "logic", split="train")) == logic.rows
    assert len(datasets.load_dataset(str(out), split="train")) == again.rows  # the default


def test_llamafactory_entries_follow_its_dataset_info_schema(runs: dict[str, Path],
                                                             tmp_path: Path) -> None:
    """LLaMA-Factory's data/README.md: alpaca maps prompt/query/response(/system) columns;
    sharegpt sets formatting, columns.messages and the role/content tags its rows use;
    preference data sets ranking: true and maps chosen/rejected. Every mapped column must exist
    in every row of the entry's own file (a missing one is LLaMA-Factory's KeyError)."""
    out = tmp_path / "lf"
    export(runs["quickstart"], out, ExportOptions(format="alpaca",
                                                  columns=ColumnMap(system=SYSTEM)))
    export(runs["quickstart"], out, ExportOptions(format="sharegpt"))
    export(runs["prefs"], out, ExportOptions(format="dpo"))
    info = json.loads((out / "dataset_info.json").read_text())
    assert set(info) == {"quickstart", "quickstart-sharegpt", "prefs"}
    assert len({e["file_name"] for e in info.values()}) == 3
    for entry in info.values():
        rows = rows_of(out / entry["file_name"])
        if entry.get("formatting") == "sharegpt":
            tags = entry["tags"]
            for row in rows:
                turns = row[entry["columns"]["messages"]]
                assert {t[tags["role_tag"]] for t in turns} <= {
                    tags["user_tag"], tags["assistant_tag"], tags["system_tag"]}
                assert all(isinstance(t[tags["content_tag"]], str) for t in turns)
        else:
            assert all(c in row for c in entry["columns"].values() for row in rows)
    assert info["prefs"]["ranking"] is True
    assert set(info["quickstart"]["columns"]) == {"prompt", "query", "response", "system"}
    # LLaMA-Factory maps no reasoning field: with a reasoning template it would train on an
    # empty <think></think>, so its formats carry the reasoning inside the answer.
    alpaca = rows_of(out / info["quickstart"]["file_name"])[0]
    assert alpaca["output"].startswith("<think>\nPlan for:") and "reasoning" not in alpaca
