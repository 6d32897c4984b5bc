"""The dataset card (README.md beside an export): recipe, models, counts, funnel, licence notes.

Hugging Face reads the YAML front matter (licence, tags, size, data files); people read the rest.
Everything comes from the run folder (summary.json, the records' provenance), so the card says
what was run, not what was meant to be.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from synthloom import __version__

if TYPE_CHECKING:
    from synthloom.export.formats import ExportResult

EMBEDDED_PREFIX = "llamacpp:SmolLM2-135M"
SIZE_BINS = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
             (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"))


def size_category(n: int) -> str:
    return next((label for limit, label in SIZE_BINS if n < limit), "n>10M")


def load_summary(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def recipe_text(run_dir: Path, summary: dict[str, Any]) -> tuple[str, str | None]:
    """(description, YAML) of the run's recipe: ``recipe.yaml`` in the run folder if a run
    wrote one, else the shipped recipe of that name; ("", None) when neither exists."""
    path = run_dir / "recipe.yaml"
    if not path.is_file():
        from synthloom.core.recipe import packaged_recipes

        path = packaged_recipes().get(summary.get("recipe", ""), Path("/nonexistent"))
    if not path.is_file():
        return "", None
    text = path.read_text(encoding="utf-8")
    try:
        description = str((yaml.safe_load(text) or {}).get("description", ""))
    except yaml.YAMLError:
        description = ""
    return description, text


def provenance_counts(run_dir: Path, file: str) -> tuple[Counter[str], Counter[str]]:
    """Models and source files named in the exported records' provenance."""
    from synthloom.export.formats import read_records

    models: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    for record in read_records(run_dir, file):
        meta = record.get("_meta") or {}
        if meta.get("model"):
            models[meta["model"]] += 1
        path = record.get("path") or meta.get("path")
        if isinstance(path, str):
            sources[path] += 1
    return models, sources


def funnel_table(summary: dict[str, Any]) -> str:
    lines = ["| step | kind | in | out | failed | dropped | LLM calls | tokens |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for s in summary.get("steps", []):
        tokens = s.get("prompt_tokens", 0) + s.get("completion_tokens", 0)
        lines.append(f"| {s['name']} | {s['kind']} | {s['in']} | {s['out']} | {s['failed']} | "
                     f"{s['dropped']} | {s.get('llm_calls', 0)} | {tokens} |")
    return "\n".join(lines)


def _fields(result: ExportResult) -> str:
    from synthloom.export.registry import get_format

    text = get_format(result.format).help
    if result.renamed_text:
        text += ("; the records' `text` column is `source_text` (TRL's SFTTrainer trains on a "
                 "`text` column by default)")
    return text


def data_files(path: str) -> str:
    """The card's data_files pattern of an export path (an hf folder: its Arrow shards)."""
    if Path(path).suffix in (".jsonl", ".parquet"):
        return path
    return "data-*.arrow" if path == "." else f"{path}/data-*.arrow"


def configs(result: ExportResult) -> list[dict[str, Any]]:
    """One ``configs:`` entry per export in the folder, each naming its own file; this export
    is the default, so ``datasets.load_dataset(FOLDER)`` loads the rows just written."""
    out = []
    for entry in result.exports or [{"key": result.key or result.name, "format": result.format,
                                     "path": result.data_path.name}]:
        config: dict[str, Any] = {"config_name": entry["key"], "data_files": [
            {"split": "train", "path": data_files(entry["path"])}]}
        if not out:
            config["default"] = True
        out.append(config)
    return out


#: Where ``Dataset.push_to_hub`` puts the rows of its default config's train split.
HUB_SHARDS = "data/train-*"


def hub_card(card: str) -> str:
    """The card as pushed to the Hub: its ``configs:`` name the files as uploaded (push_to_hub's
    parquet shards, one default config) instead of the export folder's local files, and the
    local files' sizes (``dataset_info``) go, so ``load_dataset(REPO)`` loads the pushed rows."""
    if not card.startswith("---\n"):
        return card
    head, sep, body = card[4:].partition("\n---\n")
    front = yaml.safe_load(head) or {}
    front.pop("dataset_info", None)
    front["configs"] = [{"config_name": "default", "default": True,
                         "data_files": [{"split": "train", "path": HUB_SHARDS}]}]
    body = body.replace("- This folder holds other exports", "- The export folder held other "
                        "exports (not pushed)")
    return "---\n" + yaml.safe_dump(front, sort_keys=False).strip() + "\n---\n" + body


def build_card(run_dir: Path, result: ExportResult, file: str = "data.jsonl") -> str:
    summary = load_summary(run_dir)
    description, recipe_yaml = recipe_text(run_dir, summary)
    models, sources = provenance_counts(run_dir, file)
    run_model = (summary.get("llm") or {}).get("model")
    embedded = any(m.startswith(EMBEDDED_PREFIX) for m in [*models, run_model or ""])
    front: dict[str, Any] = {
        "license": "other",
        "tags": ["synthetic", "synthloom", result.format],
        "task_categories": ["text-generation"],
        "size_categories": [size_category(result.rows)],
        "pretty_name": result.name,
    }
    front["configs"] = configs(result)
    # datasets caches a folder's load by its card (configs and dataset_info), not by the files'
    # times: the sizes make a re-export's rows load instead of the cached earlier ones.
    front["dataset_info"] = [
        {"config_name": e["key"], "splits": [{"name": "train", "num_examples": e["rows"],
                                               "num_bytes": e["bytes"]}],
         "download_size": e["bytes"], "dataset_size": e["bytes"]}
        for e in result.exports if isinstance(e.get("rows"), int) and isinstance(e.get("bytes"), int)]
    if not front["dataset_info"]:
        del front["dataset_info"]
    out = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "",
           f"# {result.name}", "",
           f"Synthetic data generated with [synthloom](https://pypi.org/project/synthloom/) "
           f"{__version__} by the recipe `{summary.get('recipe', '?')}`"
           + (f": {description}" if description else "."), ""]
    if embedded:
        out += ["> **Made with the embedded SmolLM2-135M-Instruct model**, which is meant for "
                "trying the engine: expect weak instructions and weaker answers. Do not train "
                "on this data; rerun the recipe with a real model behind `--backend openai:...`.",
                ""]
    skipped = sum(result.skipped.values())
    from synthloom.export.registry import get_format

    path = result.data_path.relative_to(result.out_dir) if result.data_path != result.out_dir \
        else Path(".")
    where = f"`{path}`" if result.format != "hf" else f"save_to_disk folder `{path}`"
    out += ["## Contents", "",
            f"- **{result.rows}** rows in `{result.format}` format ({where}); fields: "
            f"{_fields(result)}.",
            f"- Read by: {get_format(result.format).readers}.",
            f"- Read {result.read} records from the run's `{file}`; skipped {skipped}"
            + ("" if not skipped else " (" + "; ".join(
                f"{n}× {why}" for why, n in result.skipped.most_common()) + ")") + "."]
    if result.reviewed:
        r = result.reviewed
        out.append(f"- Human review: only the {r['kept']} of {r['of']} records of "
                   f"`{r['source_file']}` a reviewer marked **{r['status']}** "
                   f"(`synthloom review`); {r['edited']} carry the reviewer's edited values "
                   "(`_meta.edited` names the columns).")
    if result.columns:
        mapping = ", ".join(f"{k} ← `{v}`" for k, v in result.columns.items())
        out.append(f"- Column mapping: {mapping}.")
    if result.reasoning == "think-tags":
        out.append("- Reasoning, where a record has it, is inside the answer as "
                   "`<think>…</think>` (`--reasoning think-tags`).")
    if result.dataset_info:
        out.append("- `dataset_info.json` holds the LLaMA-Factory entry "
                   f"`{next(iter(result.dataset_info))}`.")
    others = result.exports[1:]
    if others:
        listed = ", ".join(f"`{e['key']}` ({e['format']}, `{e['path']}`)" for e in others)
        out.append(f"- This folder holds other exports, each its own config: {listed}; "
                   f"`datasets.load_dataset(FOLDER, NAME)` loads one, this export "
                   f"(`{result.key}`) is the default.")
    out.append("- Every row carries the record `id`; the run folder's `run.db`, `data.jsonl` "
               "and `_meta.parents` trace it back to its source document.")
    out += ["", "## Funnel", "",
            f"Run status: **{summary.get('status', '?')}**; {summary.get('records', '?')} "
            f"records, {summary.get('failed', 0)} failed and {summary.get('dropped', 0)} "
            f"dropped items (kept with their reasons in `failed.jsonl` / `dropped.jsonl`); "
            f"{summary.get('llm_calls', 0)} LLM calls, {summary.get('prompt_tokens', 0)} "
            f"prompt + {summary.get('completion_tokens', 0)} completion tokens.", "",
            funnel_table(summary), ""]
    out += ["## Models", ""]
    out += [f"- `{m}`: {n} exported records name it in `_meta.model`" for m, n in
            models.most_common()]
    if run_model and run_model not in models:
        out.append(f"- `{run_model}`: the run's model (summary.json)")
    # Named models (recipe models:) made the data too, also where the exported records name a
    # later step's model: each is listed, so its terms get checked.
    for name, info in (summary.get("models") or {}).items():
        model_id = info.get("model")
        if "same_as" in info or not model_id or model_id in models or model_id == run_model:
            continue
        steps = ", ".join(f"`{s}`" for s in info.get("steps", [])) or "no step"
        out.append(f"- `{model_id}`: named model `{name}` ({steps}; {info.get('calls', 0)} "
                   "calls this run, summary.json)")
    if not models and not run_model:
        out.append("- none recorded (no LLM step)")
    if recipe_yaml:
        out += ["", "## Recipe", "", "```yaml", recipe_yaml.strip(), "```"]
    out += ["", "## Licence notes", "",
            "- The `license` above is `other` until you choose one: the data derives from the "
            "source documents and from model outputs, so check both before publishing.",
            "- Source documents: " + (", ".join(f"`{s}`" for s, _ in sources.most_common(10))
                                      + (" …" if len(sources) > 10 else "")
                                      if sources else "not recorded in the records") + ".",
            "- Model terms: check the licence and terms of use of each model above "
            "(some forbid training competing models on their outputs)."]
    if embedded:
        out.append("- SmolLM2-135M-Instruct is released under Apache-2.0.")
    out.append("- synthloom is Apache-2.0; its licence does not cover the generated data.")
    return "\n".join(out) + "\n"


def write_card(run_dir: Path, result: ExportResult, file: str = "data.jsonl") -> Path:
    path = result.out_dir / "README.md"
    path.write_text(build_card(Path(run_dir), result, file), encoding="utf-8")
    return path
