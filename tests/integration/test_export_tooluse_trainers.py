"""Tool-use exports read by their consumers (issue 24 §4): every export of a real apigen run
loads with ``datasets`` (file and folder) with its calls intact; the ``messages`` export goes
through TRL's chat-template path, ``tokenizer.apply_chat_template(messages, tools=tools)``,
on a tokenizer built here (a byte-level BPE trained on the run's text, offline) whose Jinja
template supports tools the way Qwen2.5's does (tools in the system turn, ``<tool_call>`` blocks
with ``arguments | tojson``, which refuses JSON-text arguments as LFM2's template does); and
TRL's SFTTrainer trains two CPU steps on it, its tokenized rows holding the tools and calls."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from synthloom.export.formats import ExportOptions, export
from synthloom.export.tooluse import calls_in_hermes, calls_in_messages, calls_in_sharegpt
from tests.unit.test_export_tooluse import apigen_run, record_calls

pytestmark = pytest.mark.integration

datasets = pytest.importorskip("datasets", reason="datasets not installed (extra: hf)")
torch = pytest.importorskip("torch", reason="torch not installed (extra: reward)")
transformers = pytest.importorskip("transformers", reason="transformers not installed")
trl = pytest.importorskip("trl", reason="trl not installed (extra: test)")
pytest.importorskip("tokenizers", reason="tokenizers not installed")

# A ChatML template with tools (written for this test, in the manner of Qwen2.5's).
TOOLS_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\n"
    "{%- if messages[0].role == 'system' %}{{ messages[0].content }}\n\n{% endif %}"
    "# Tools\n<tools>\n{%- for t in tools %}\n{{ t | tojson }}{%- endfor %}\n</tools><|im_end|>\n"
    "{%- elif messages[0].role == 'system' %}<|im_start|>system\n"
    "{{ messages[0].content }}<|im_end|>\n{%- endif %}"
    "{%- for m in messages %}"
    "{%- if m.role == 'assistant' %}<|im_start|>assistant\n{{ m.content or '' }}"
    "{%- for c in m.tool_calls or [] %}"
    "{%- if c.function.arguments is string %}"
    "{{ raise_exception('tool call arguments must be a mapping') }}{%- endif %}"
    "<tool_call>\n{\"name\": \"{{ c.function.name }}\", \"arguments\": "
    "{{ c.function.arguments | tojson }}}\n</tool_call>{%- endfor %}<|im_end|>\n"
    "{%- elif m.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ m.content }}\n"
    "</tool_response><|im_end|>\n"
    "{%- elif m.role != 'system' %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return apigen_run(tmp_path_factory.mktemp("apigen"))


@pytest.fixture(scope="module")
def tokenizer(run: Path) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    texts = (run / "data.jsonl").read_text().splitlines()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token="<pad>", unk_token="<unk>", eos_token="<|im_end|>",
        bos_token="<|im_start|>")
    tok.chat_template = TOOLS_TEMPLATE
    return tok


def kept(run: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / "data.jsonl").read_text().splitlines() if x.strip()]


def load(result: Any) -> Any:
    """The export by file and by folder (the card's config); both the same rows."""
    by_file = datasets.load_dataset("json", data_files=[str(result.data_path)], split="train")
    by_folder = datasets.load_dataset(str(result.out_dir), split="train")
    assert by_folder.to_list() == by_file.to_list()
    assert len(by_file) == result.rows > 0
    return by_file


def test_every_tool_export_loads_with_its_calls(run: Path, tmp_path: Path) -> None:
    records = kept(run)
    readers = {"messages": lambda r: calls_in_messages(r["messages"]),
               "prompt-completion": lambda r: calls_in_messages(r["prompt"] + r["completion"]),
               "sharegpt": lambda r: calls_in_sharegpt(r["conversations"]),
               "hermes": lambda r: calls_in_hermes(r["messages"])}
    for fmt, calls in readers.items():
        dataset = load(export(run, tmp_path / fmt, ExportOptions(format=fmt)))
        for record, row in zip(records, dataset, strict=True):
            assert calls(row) == record_calls(record), fmt
    openai = load(export(run, tmp_path / "openai", ExportOptions(target="openai")))
    for record, row in zip(records, openai, strict=True):
        assert calls_in_messages(row["messages"]) == record_calls(record)
        assert row["tools"] == record["tools"]


def test_varying_argument_keys_load_as_objects(run: Path, tmp_path: Path) -> None:
    """Arguments and tool schemas whose keys vary between rows come back as the objects
    written: datasets >= 4.7 types them ``Json()`` (older versions unify them into one struct,
    filling absent keys with null, which a chat template then renders), and >= 4.8.5 returns
    them as objects from ``to_list()`` too (4.7-4.8.4: JSON text there). The hf extra pins it."""
    records = kept(run)
    assert len({frozenset(args) for r in records for _, args in record_calls(r)}) > 1
    dataset = load(export(run, tmp_path / "m", ExportOptions(target="trl")))
    for rows in (list(dataset), dataset.to_list()):
        for record, row in zip(records, rows, strict=True):
            calls = [(c["function"]["name"], c["function"]["arguments"])
                     for m in row["messages"] for c in m.get("tool_calls") or []]
            assert calls == record_calls(record)  # objects, not text; no null-filled keys
            assert row["tools"] == record["tools"]


def test_messages_export_through_the_chat_template_with_tools(run: Path, tokenizer: Any,
                                                              tmp_path: Path) -> None:
    dataset = load(export(run, tmp_path / "m", ExportOptions(target="trl")))
    for record, row in zip(kept(run), dataset, strict=True):
        text = tokenizer.apply_chat_template(row["messages"], tools=row["tools"], tokenize=False)
        assert text.startswith("<|im_start|>system") and "# Tools\n<tools>" in text
        assert all(json.dumps(t) in text for t in record["tools"])  # the offered tools
        assert record["query"] in text
        # The rendered calls parse back to the record's calls, each result follows them.
        rendered = [json.loads(b) for b in TOOL_CALL.findall(text)]
        assert [(c["name"], c["arguments"]) for c in rendered] == record_calls(record)
        for result in record.get("tool_results") or []:
            assert f"<tool_response>\n{json.dumps(result['content'])}\n</tool_response>" in text
    # The OpenAI export's JSON-text arguments are what such templates refuse.
    openai = load(export(run, tmp_path / "o", ExportOptions(target="openai")))
    with_calls = next(r for r in openai if calls_in_messages(r["messages"]))
    with pytest.raises(Exception, match="must be a mapping"):
        tokenizer.apply_chat_template(with_calls["messages"], tools=with_calls["tools"],
                                      tokenize=False)


def test_sft_trains_on_the_tool_messages_export(run: Path, tokenizer: Any,
                                                tmp_path: Path) -> None:
    dataset = load(export(run, tmp_path / "m", ExportOptions(target="trl")))
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id))
    trainer = trl.SFTTrainer(
        model=model, processing_class=tokenizer, train_dataset=dataset,
        args=trl.SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=2,
                           per_device_train_batch_size=2, learning_rate=1e-3, report_to=[],
                           save_strategy="no", use_cpu=True, disable_tqdm=True, seed=0,
                           max_length=2048))
    # TRL passed each row's tools to the template: the tokenized row holds them and the call.
    record = kept(run)[0]
    first = tokenizer.decode(trainer.train_dataset[0]["input_ids"])
    assert "<tools>" in first and record["tools"][0]["function"]["name"] in first
    assert "<tool_call>" in first and record["query"] in first
    out = trainer.train()
    assert out.global_step == 2 and out.training_loss > 0
