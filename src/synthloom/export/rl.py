"""RL exports: a dataset plus the reward function that grades rollouts with synthloom's own
verifiers (issue 25 item 5). Three formats, each writing its data and a reward module beside it:

* ``verl``: ``train.parquet`` with verl's columns - ``data_source``, ``prompt`` (chat
  messages), ``ability``, ``reward_model: {style: rule, ground_truth}``, ``extra_info`` - and
  ``reward.py`` with verl's ``compute_score(data_source, solution_str, ground_truth,
  extra_info)``;
* ``grpo``: ``train.jsonl`` with ``prompt`` messages, ``ground_truth`` and ``data_source`` (the
  columns GRPOTrainer hands its reward functions) and ``grpo_reward.py`` with TRL's
  reward-function signature ``reward(completions, **kwargs) -> list[float]``;
* ``verifiers``: ``train.jsonl`` (``prompt``, ``question``, ``answer`` = ground truth, ``task``,
  ``info``) and ``environment.py`` with ``load_environment()``.

The ground truth is what the record's verifier needs (:mod:`synthloom.verify.rewards`): a
logic task's fields, a reasoning-gym entry's coordinates, or a gold math answer. Records no
verifier covers are skipped with the reason (counted).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from synthloom.core.errors import SynthloomError
from synthloom.export.registry import ColumnMap, Skip, register_format, write_jsonl
from synthloom.export.rows import INSTRUCTION_NAMES, detect
from synthloom.verify.rewards import ground_truth

#: The generated modules: format -> (packaged source, the name written beside the data).
MODULES = {"verl": ("verl_reward.py", "reward.py"),
           "grpo": ("grpo_reward.py", "grpo_reward.py"),
           "verifiers": ("verifiers_env.py", "environment.py")}


def rl_columns(fmt: str, sample: list[dict[str, Any]], given: ColumnMap) -> dict[str, Any]:
    """The prompt column (``--instruction-column`` / ``--prompt-column``, else found by name),
    and at least one sampled record a verifier covers."""
    prompt = given.prompt or given.instruction or detect(sample, INSTRUCTION_NAMES)
    if prompt is None:
        raise SynthloomError(f"format {fmt}: no prompt column found (looked for "
                             f"{', '.join(INSTRUCTION_NAMES)}); pass --instruction-column")
    reasons = []
    for record in sample:
        try:
            ground_truth(record)
            break
        except ValueError as exc:
            reasons.append(str(exc))
    else:
        raise SynthloomError(f"format {fmt}: no record has a verifier to reward with "
                             f"({reasons[0] if reasons else 'no records'})")
    return {"prompt": prompt}


def _prompt(record: dict[str, Any], cols: dict[str, Any]) -> list[dict[str, str]]:
    text = record.get(cols["prompt"])
    if not isinstance(text, str) or not text.strip():
        raise Skip(f"no prompt text in {cols['prompt']!r}")
    return [{"role": "user", "content": text}]


def _truth(record: dict[str, Any]) -> tuple[str, str, str]:
    """(data_source, ground truth JSON, ability) of a record, or Skip."""
    try:
        source, truth = ground_truth(record)
    except ValueError as exc:
        raise Skip(str(exc)) from None
    return source, json.dumps(truth, ensure_ascii=False, sort_keys=True), truth["kind"]


def _record_id(record: dict[str, Any]) -> str | None:
    meta = record.get("_meta")
    return meta.get("id") if isinstance(meta, dict) else None


def _write_module(fmt: str, data_path: Path) -> Path:
    source, name = MODULES[fmt]
    text = resources.files("synthloom.export.rl_modules").joinpath(source).read_text("utf-8")
    if fmt == "verifiers":  # the environment reads the data file written beside it
        text = text.replace('DATA_FILE = "train.jsonl"', f"DATA_FILE = {data_path.name!r}")
    target = data_path.with_name(name)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
    return target


def write_verl(rows: Iterable[dict[str, Any]], path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise SynthloomError('the verl format writes parquet: pip install "synthloom[parquet]"'
                             ) from None
    # Nested columns stay nested: verl reads `prompt` as messages, `reward_model` as a struct.
    table = pa.Table.from_pylist(list(rows))
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    _write_module("verl", path)


def write_grpo(rows: Iterable[dict[str, Any]], path: Path) -> None:
    write_jsonl(rows, path)
    _write_module("grpo", path)


def write_verifiers(rows: Iterable[dict[str, Any]], path: Path) -> None:
    write_jsonl(rows, path)
    _write_module("verifiers", path)


@register_format(
    "verl", columns=rl_columns, write=write_verl, file="train.parquet", suffix=".parquet",
    help="`data_source`, `prompt` messages, `ability`, `reward_model: {style: rule, "
         "ground_truth}`, `extra_info`; + `reward.py` (`compute_score`)",
    readers="verl (PPO/GRPO with custom_reward_function.path=reward.py)")
def verl_row(record: dict[str, Any], cols: dict[str, Any], mode: str,
             meta: bool) -> dict[str, Any]:
    source, truth, kind = _truth(record)
    return {"data_source": source, "prompt": _prompt(record, cols), "ability": kind,
            "reward_model": {"style": "rule", "ground_truth": truth},
            # One shape for every row: parquet wants one struct type for the column.
            "extra_info": {"id": _record_id(record) or "", "task": source,
                           "answer": str(record.get("answer") or "")}}


@register_format(
    "grpo", columns=rl_columns, write=write_grpo,
    help="`prompt` messages, `ground_truth`, `data_source`; + `grpo_reward.py` "
         "(`reward(completions, **kwargs)`)",
    readers="TRL GRPOTrainer (reward_funcs=grpo_reward.reward)")
def grpo_row(record: dict[str, Any], cols: dict[str, Any], mode: str,
             meta: bool) -> dict[str, Any]:
    source, truth, _ = _truth(record)
    row = {"prompt": _prompt(record, cols), "ground_truth": truth, "data_source": source}
    if meta and _record_id(record):
        row["id"] = _record_id(record)
    return row


@register_format(
    "verifiers", columns=rl_columns, write=write_verifiers,
    help="`prompt`, `question`, `answer` (ground truth), `task`, `info`; + `environment.py` "
         "(`load_environment()`)",
    readers="verifiers-style environments (load_environment)")
def verifiers_row(record: dict[str, Any], cols: dict[str, Any], mode: str,
                  meta: bool) -> dict[str, Any]:
    source, truth, _ = _truth(record)
    prompt = _prompt(record, cols)
    return {"prompt": prompt, "question": prompt[0]["content"], "answer": truth,
            "task": source, "info": {"id": _record_id(record) or "",
                                     "reference": str(record.get("answer") or "")}}
