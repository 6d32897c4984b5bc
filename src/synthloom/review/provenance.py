"""A record's provenance for the record page: the chain of ids back to its source, the source
chunk's text with the span marked, and the prompt template that made it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthloom.review.index import RunIndex

#: Document text shown around the chunk span.
CONTEXT_CHARS = 600
TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".rst", ".text")


def chain(index: RunIndex, record: dict[str, Any]) -> list[dict[str, Any]]:
    """This record, its parents (linked where a run file keeps them; intermediate records
    live only in the cache) and the source document / chunk."""
    meta = record.get("_meta") or {}
    out = [{"what": "record", "id": meta.get("id"), "step": meta.get("step"),
            "model": meta.get("model"), "sample_index": meta.get("sample_index"),
            "resample": meta.get("resample"), "where": []}]
    for parent in meta.get("parents") or []:
        out.append({"what": "parent", "id": parent, "step": None, "model": None,
                    "sample_index": None, "resample": None, "where": index.find(parent)})
    source = meta.get("source")
    if isinstance(source, dict):
        if source.get("chunk_id"):
            out.append({"what": "chunk", "id": source.get("chunk_id"), "step": None,
                        "model": None, "sample_index": None, "resample": None, "where": []})
        out.append({"what": "source", "id": source.get("id"), "step": None, "model": None,
                    "sample_index": None, "resample": None, "where": index.find(
                        source["id"]) if source.get("id") else []})
    return out


def source_view(run_dir: Path, record: dict[str, Any]) -> dict[str, Any] | None:
    """The source: its fields, and the chunk text split as (before, span, after) so the page
    marks the span. The text comes from the source file when it is plain text and still
    there, else from the record's own chunk column."""
    meta = record.get("_meta") or {}
    source = meta.get("source")
    if not isinstance(source, dict):
        return None
    view: dict[str, Any] = {"fields": source, "before": "", "span": "", "after": "",
                            "from": None}
    start, end = source.get("char_start"), source.get("char_end")
    path = source.get("path") or meta.get("path")
    text = _read_text(run_dir, path) if path else None
    if text is not None and isinstance(start, int) and isinstance(end, int):
        view.update(before=text[max(0, start - CONTEXT_CHARS):start], span=text[start:end],
                    after=text[end:end + CONTEXT_CHARS], **{"from": str(path)})
    elif text is not None:
        view.update(span=text[:4 * CONTEXT_CHARS], **{"from": str(path)})
    else:
        for column in ("chunk", "text", "document", "context", "passage"):
            if isinstance(record.get(column), str):
                view.update(span=record[column], **{"from": f"column {column!r}"})
                break
    return view


def _read_text(run_dir: Path, path: str) -> str | None:
    candidate = Path(path)
    if not candidate.is_absolute() and not candidate.is_file():
        candidate = run_dir / path
    if candidate.suffix.lower() not in TEXT_SUFFIXES or not candidate.is_file():
        return None
    try:
        return candidate.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def prompt_of(run_dir: Path, record: dict[str, Any]) -> dict[str, Any] | None:
    """The prompt template of the step that made the record (from the run's recipe.yaml),
    rendered again with the record's columns where they cover its variables; ``matches``
    says whether the template's hash is the one in ``_meta.template_hash``."""
    meta = record.get("_meta") or {}
    recipe_path = run_dir / "recipe.yaml"
    if not meta.get("template_hash") or not recipe_path.is_file():
        return None
    import yaml

    from synthloom.prompting.templates import load_template

    try:
        recipe = yaml.safe_load(recipe_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        return {"error": f"{recipe_path}: {exc}"}
    step = next((s for s in recipe.get("steps") or [] if isinstance(s, dict)
                 and s.get("name") == meta.get("step")), None)
    name = step.get("template") if step else None
    if not isinstance(name, str):
        return {"error": f"step {meta.get('step')!r} names no template in recipe.yaml",
                "hash": meta["template_hash"]}
    try:
        template = load_template(name)
    except Exception as exc:  # noqa: BLE001 - a moved template is shown as such, not a 500
        return {"error": str(exc), "hash": meta["template_hash"]}
    rendered = None
    columns = {k: v for k, v in record.items() if k != "_meta"}
    try:
        rendered = template.render_messages(columns)
    except Exception:  # noqa: BLE001 - the input's columns were replaced: source only
        rendered = None
    return {"name": name, "source": template.source, "rendered": rendered,
            "hash": meta["template_hash"], "matches": template.hash == meta["template_hash"],
            "error": None}
