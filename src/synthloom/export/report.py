"""``report.html``: one self-contained page about a run (plots embedded, no network).

Funnel per step, drop reasons, failure classes, duplicates found, length / score / topic
distributions, diversity (distinct-n, MTLD), tokens and estimated cost, throughput and LLM
latency, and a sample of records with their provenance. Everything is read from the run folder
(summary.json, data.jsonl, dropped.jsonl, failed.jsonl, run.db), streaming, so a big run costs
memory only for the texts kept for diversity (``max_texts`` per column).
"""

from __future__ import annotations

import html
import json
import re
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthloom import __version__
from synthloom.export import plots
from synthloom.export.card import load_summary

#: Text columns shown first in length and diversity sections, when present.
PREFERRED = ("instruction", "question", "prompt", "response", "answer", "chosen", "rejected",
             "output", "text")
MAX_COLUMNS = 6
_NUMBER = re.compile(r"\b\d+(?:\.\d+)?\b")
_HEXID = re.compile(r"\b[0-9a-f]{12,64}\b")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn last line of a killed run: skip, do not fail the report


def reason_group(reason: str) -> str:
    """Reasons that differ only by numbers, ids or quoted text fall in one group."""
    return _NUMBER.sub("#", _QUOTED.sub("'…'", _HEXID.sub("<id>", reason)))


def _words(text: str) -> list[str]:
    return text.split()


def _distinct(texts: list[str], n: int) -> float:
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        tokens = _words(text.lower())
        grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def diversity(texts: list[str]) -> dict[str, float]:
    """distinct-1/2/3 and MTLD, from ``synthloom.quality.diversity`` when it is installed."""
    try:
        from synthloom.quality.diversity import corpus_mtld, distinct_n
    except ImportError:
        return {f"distinct_{n}": _distinct(texts, n) for n in (1, 2, 3)}
    out = {f"distinct_{n}": distinct_n(texts, n) for n in (1, 2, 3)}
    out["mtld"] = corpus_mtld(texts)
    return out


@dataclass
class RunData:
    summary: dict[str, Any]
    records: int = 0
    lengths: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    texts: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    #: scores column -> its totals, and criterion -> scores
    totals: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    criteria: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    numbers: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    topics: Counter[str] = field(default_factory=Counter)
    sample: list[dict[str, Any]] = field(default_factory=list)
    drops: Counter[tuple[str, str]] = field(default_factory=Counter)
    drop_examples: dict[tuple[str, str], str] = field(default_factory=dict)
    duplicates: Counter[str] = field(default_factory=Counter)
    duplicate_examples: list[tuple[str, str]] = field(default_factory=list)
    failures: Counter[tuple[str, str]] = field(default_factory=Counter)
    failure_examples: dict[tuple[str, str], str] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    call_tps: list[float] = field(default_factory=list)
    #: (finish time, completion tokens) of calls whose cache entry has ``finished_at``
    finished: list[tuple[float, int]] = field(default_factory=list)


def gather(run_dir: Path, sample: int = 5, max_texts: int = 5000) -> RunData:
    data = RunData(summary=load_summary(run_dir))
    for record in _lines(run_dir / "data.jsonl"):
        data.records += 1
        if len(data.sample) < sample:
            data.sample.append(record)
        for key, value in record.items():
            if key == "_meta":
                continue
            if isinstance(value, str):
                data.lengths[key].append(len(_words(value)))
                if len(data.texts[key]) < max_texts:
                    data.texts[key].append(value)
            elif isinstance(value, int | float) and not isinstance(value, bool) and (
                    key.endswith("_score") or key in ("margin", "score")):
                data.numbers[key].append(float(value))
            elif isinstance(value, dict) and isinstance(value.get("criteria"), dict) and \
                    isinstance(value.get("total"), int | float):
                data.totals[key].append(float(value["total"]))
                for name, crit in value["criteria"].items():
                    if isinstance(crit, dict) and isinstance(crit.get("score"), int | float):
                        data.criteria[key][name].append(float(crit["score"]))
        if isinstance(record.get("topic_label"), str):
            data.topics[record["topic_label"]] += 1
    for row in _lines(run_dir / "dropped.jsonl"):
        reason, step = str(row.get("reason", "")), str(row.get("step", "?"))
        if "duplicate" in reason.lower():
            data.duplicates[step] += 1
            if len(data.duplicate_examples) < 10:
                data.duplicate_examples.append((step, reason))
        key = (step, reason_group(reason))
        data.drops[key] += 1
        data.drop_examples.setdefault(key, reason)
    for row in _lines(run_dir / "failed.jsonl"):
        key = (str(row.get("step", "?")), str(row.get("error_class", "?")))
        data.failures[key] += 1
        data.failure_examples.setdefault(key, str(row.get("message", ""))[:300])
    _llm_calls(run_dir / "run.db", data)
    return data


def _llm_calls(db: Path, data: RunData, limit: int = 50_000) -> None:
    """Latency and tokens/s of the LLM calls this run folder has cached."""
    if not db.is_file():
        return
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT value FROM llm_cache LIMIT ?", (limit,)).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return  # an unreadable cache only costs the latency chart
    for (value,) in rows:
        try:
            call = json.loads(value)
        except ValueError:
            continue
        latency = call.get("latency_s") or 0.0
        if latency > 0:
            data.latencies.append(latency)
            tokens = (call.get("usage") or {}).get("completion_tokens", 0)
            data.call_tps.append(tokens / latency)
            if isinstance(call.get("finished_at"), int | float) and call["finished_at"] > 0:
                data.finished.append((call["finished_at"], tokens))


# --- HTML -------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
td.n,th.n{text-align:right} .muted{color:#777} img,svg{max-width:100%;margin:.4em 0}
pre{background:#f6f6f6;padding:.6em;white-space:pre-wrap;font-size:.85em;max-height:18em;
overflow:auto}
.cards{display:flex;gap:1em;flex-wrap:wrap} .card{border:1px solid #ddd;border-radius:6px;
padding:.5em 1em} .card b{font-size:1.3em;display:block}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f'<th class="{"n" if i in numeric else ""}">{_e(h)}</th>'
                   for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="{"n" if i in numeric else ""}">{_e(c)}</td>'
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _columns(data: RunData) -> list[str]:
    present = [c for c in PREFERRED if data.lengths.get(c)]
    rest = sorted((c for c in data.lengths if c not in present and data.lengths[c]),
                  key=lambda c: -sum(data.lengths[c]) / len(data.lengths[c]))
    return [*present, *rest][:MAX_COLUMNS]


def _funnel(summary: dict[str, Any]) -> str:
    steps = summary.get("steps", [])
    if not steps:
        return '<p class="muted">no summary.json</p>'
    rows = [[s["name"], s["kind"], s["in"], s["out"], s["failed"], s["dropped"],
             s.get("cached", 0)] for s in steps]
    chart = plots.bars([s["name"] for s in steps],
                       {"out": [s.get("kept", s["out"]) if s["kind"] == "global" else
                                s.get("expanded", s["out"]) if s["kind"] == "expand" else
                                s["out"] for s in steps],
                        "failed": [s["failed"] for s in steps],
                        "dropped": [s["dropped"] for s in steps]},
                       "items per step: passed / failed / dropped")
    return chart + _table(["step", "kind", "in", "out", "failed", "dropped", "cached"], rows,
                          {2, 3, 4, 5, 6})


def _tokens(summary: dict[str, Any], price_per_1k: float) -> str:
    steps = [s for s in summary.get("steps", []) if s.get("llm_calls") or s.get("prompt_tokens")]
    rows = []
    for s in summary.get("steps", []):
        tokens = s.get("prompt_tokens", 0) + s.get("completion_tokens", 0)
        secs = s.get("seconds", 0) or 0
        rows.append([s["name"], s.get("llm_calls", 0), s.get("llm_cache_hits", 0),
                     s.get("prompt_tokens", 0), s.get("completion_tokens", 0),
                     f"{tokens / 1000 * price_per_1k:.4f}", f"{secs:.1f}",
                     f"{s['in'] / secs:.2f}" if secs else "–",
                     f"{s.get('completion_tokens', 0) / secs:.1f}" if secs else "–"])
    total = summary.get("prompt_tokens", 0) + summary.get("completion_tokens", 0)
    cost = total / 1000 * price_per_1k
    chart = plots.bars([s["name"] for s in steps],
                       {"prompt": [s.get("prompt_tokens", 0) for s in steps],
                        "completion": [s.get("completion_tokens", 0) for s in steps]},
                       "new tokens per step") if steps else ""
    return (f"<p>{total} new tokens ({summary.get('prompt_tokens', 0)} prompt + "
            f"{summary.get('completion_tokens', 0)} completion); estimated cost "
            f"<b>{cost:.4f}</b> at {price_per_1k:g} per 1k tokens "
            "(<code>--price-per-1k</code>). Replayed items spend nothing and count 0.</p>"
            + chart + _table(["step", "LLM calls", "LLM cache hits", "prompt tokens",
                              "completion tokens", "cost", "seconds", "items/s",
                              "completion tok/s"], rows, set(range(1, 9)))
            + _models(summary))


def _models(summary: dict[str, Any]) -> str:
    """Per named model (recipe ``models:``): what its own client did (calls are backend
    requests, retries included; tokens are new work)."""
    models = summary.get("models") or {}
    if not models:
        return ""
    rows = []
    for name, m in models.items():
        steps = ", ".join(m.get("steps", []))
        if "same_as" in m:
            rows.append([name, f"same client as {m['same_as']}", "", steps, "", "", "", "",
                         "", ""])
            continue
        rows.append([name, m.get("backend", ""), m.get("model", ""), steps, m.get("calls", 0),
                     m.get("cache_hits", 0), m.get("retries", 0), m.get("failed_requests", 0),
                     m.get("prompt_tokens", 0), m.get("completion_tokens", 0)])
    return ("<h3>Per model</h3>"
            + _table(["model", "backend", "model id", "steps", "calls", "cache hits", "retries",
                      "failed requests", "prompt tokens", "completion tokens"], rows,
                     set(range(4, 10))))


def _reasons(data: RunData) -> str:
    if not data.drops:
        return '<p class="muted">nothing was dropped</p>'
    top = data.drops.most_common(15)
    chart = plots.bars([f"{step}: {group}" for (step, group), _ in top],
                       {"dropped": [n for _, n in top]}, "drop reasons (grouped)")
    rows = [[step, group, n, data.drop_examples[(step, group)]] for (step, group), n in
            data.drops.most_common(40)]
    return chart + _table(["step", "reason (grouped)", "count", "example"], rows, {2})


def _failures(data: RunData, summary: dict[str, Any]) -> str:
    llm = summary.get("llm") or {}
    client = (f"<p>LLM client: {llm.get('calls', 0)} calls, {llm.get('retries', 0)} retries "
              f"{_e(llm.get('retry_causes', {}))}, {llm.get('failed_requests', 0)} failed "
              f"requests, {llm.get('structured_repairs', 0)} structured-output re-asks, "
              f"{llm.get('structured_failures', 0)} structured failures.</p>") if llm else ""
    if not data.failures:
        return client + '<p class="muted">no failed items</p>'
    rows = [[step, cls, n, data.failure_examples[(step, cls)]] for (step, cls), n in
            data.failures.most_common(30)]
    return client + _table(["step", "error class", "count", "example message"], rows, {2})


def _duplicates(data: RunData) -> str:
    if not data.duplicates:
        return '<p class="muted">no record was dropped as a duplicate</p>'
    rows = [[step, n] for step, n in data.duplicates.most_common()]
    examples = "".join(f"<li>{_e(step)}: {_e(reason)}</li>"
                       for step, reason in data.duplicate_examples)
    return _table(["step", "duplicates dropped"], rows, {1}) + f"<ul>{examples}</ul>"


def _diversity(data: RunData, columns: list[str]) -> str:
    rows, names = [], []
    for column in columns:
        texts = data.texts.get(column, [])
        if len(texts) < 2:
            continue
        metrics = diversity(texts)
        names = list(metrics)
        rows.append([column, len(texts), *(f"{v:.3f}" for v in metrics.values())])
    if not rows:
        return '<p class="muted">too few records for diversity metrics</p>'
    return _table(["column", "texts", *names], rows, set(range(1, len(names) + 2)))


def _scores(data: RunData) -> str:
    parts = []
    if data.totals:
        parts.append(plots.histograms({f"{c}: total": v for c, v in data.totals.items()},
                                      "rubric totals", "total"))
        means = [(f"{c}: {k}", sum(v) / len(v)) for c, crit in data.criteria.items()
                 for k, v in crit.items()]
        parts.append(plots.bars([m[0] for m in means], {"mean": [m[1] for m in means]},
                                "mean score per criterion"))
        rows = [[c, k, len(v), f"{sum(v) / len(v):.2f}", min(v), max(v)]
                for c, crit in data.criteria.items() for k, v in crit.items()]
        parts.append(_table(["column", "criterion", "n", "mean", "min", "max"], rows,
                            {2, 3, 4, 5}))
    if data.numbers:
        parts.append(plots.histograms(dict(data.numbers), "score columns", "value"))
    return "".join(parts) or '<p class="muted">no scores column in the records</p>'


def _sample(data: RunData) -> str:
    if not data.sample:
        return '<p class="muted">no records</p>'
    out = []
    for record in data.sample:
        meta = record.get("_meta") or {}
        cols = {k: (v if not isinstance(v, str) or len(v) < 600 else v[:600] + " …")
                for k, v in record.items() if k != "_meta"}
        prov = {k: meta.get(k) for k in ("id", "parents", "source", "step", "model",
                                         "template_hash", "sample_index", "usage", "path")
                if k in meta}
        out.append(f"<h3>{_e(meta.get('id', '?'))}</h3><pre>"
                   f"{_e(json.dumps(cols, indent=2, ensure_ascii=False))}</pre>"
                   f"<p class='muted'>provenance</p><pre>"
                   f"{_e(json.dumps(prov, indent=2, ensure_ascii=False))}</pre>")
    return "".join(out)


def _over_time(data: RunData) -> str:
    if len(data.finished) < 2:
        return ('<p class="muted">throughput over time needs call finish times in run.db '
                "(not recorded by this version)</p>")
    times, tokens = zip(*sorted(data.finished), strict=True)
    return plots.timeline(times, tokens, "completion tokens per second over time", "tok/s")


def build_report(run_dir: str | Path, price_per_1k: float = 0.0, sample: int = 5) -> str:
    run_dir = Path(run_dir)
    data = gather(run_dir, sample=sample)
    summary = data.summary
    columns = _columns(data)
    seconds = summary.get("seconds", 0) or 0
    throughput = (f"{summary.get('completion_tokens', 0) / seconds:.1f} completion tok/s, "
                  f"{data.records / seconds:.2f} records/s" if seconds else "–")
    cards = [("records", data.records), ("status", summary.get("status", "?")),
             ("failed", summary.get("failed", 0)), ("dropped", summary.get("dropped", 0)),
             ("LLM calls", summary.get("llm_calls", 0)), ("seconds", f"{seconds:.1f}")]
    lengths = plots.histograms({c: data.lengths[c] for c in columns},
                               "length distributions", "words")
    latency = plots.histograms({"latency (s)": data.latencies,
                                "completion tok/s per call": data.call_tps},
                               "LLM calls cached in run.db", "")
    topics = ""
    if data.topics:
        top = data.topics.most_common(20)
        topics = "<h2>Topics</h2>" + plots.bars([t for t, _ in top], {"records": [
            n for _, n in top]}, "records per topic")
    sections = [
        f"<h1>synthloom run report: {_e(summary.get('recipe', run_dir.name))}</h1>",
        f"<p class='muted'>{_e(run_dir.resolve())} · synthloom {__version__} · model "
        f"{_e((summary.get('llm') or {}).get('model', '–'))}</p>",
        *(f"<p style='color:#a40;font-weight:bold'>warning: {_e(w)}</p>"
          for w in report_warnings(run_dir)),
        *(f"<p style='color:#a40'>note: {_e(n)}</p>" for n in summary.get("notes") or []),
        "<div class='cards'>" + "".join(f"<div class='card'>{_e(k)}<b>{_e(v)}</b></div>"
                                        for k, v in cards) + "</div>",
        "<h2>Funnel</h2>", _funnel(summary),
        "<h2>Drop reasons</h2>", _reasons(data),
        "<h2>Failures</h2>", _failures(data, summary),
        "<h2>Duplicates found</h2>", _duplicates(data),
        "<h2>Lengths</h2>", lengths or '<p class="muted">no text columns</p>',
        "<h2>Scores</h2>", _scores(data),
        "<h2>Diversity</h2>", _diversity(data, columns), topics,
        "<h2>Tokens and cost</h2>", _tokens(summary, price_per_1k),
        "<h2>Throughput</h2>", f"<p>Whole run: {throughput}.</p>", latency, _over_time(data),
        f"<h2>Sample records ({len(data.sample)} of {data.records})</h2>", _sample(data),
    ]
    return ("<!doctype html><html><head><meta charset='utf-8'><title>synthloom report: "
            f"{_e(summary.get('recipe', ''))}</title><style>{CSS}</style></head><body>"
            + "\n".join(sections) + "</body></html>\n")


def report_warnings(run_dir: Path) -> list[str]:
    """Why this run's files may not be its final outputs (interrupted, failed, running,
    partial, stopped): the report is written anyway, with these lines on top."""
    from synthloom.export.formats import run_state

    return [w for w in run_state(run_dir) if w]


def write_report(run_dir: str | Path, out: str | Path | None = None,
                 price_per_1k: float = 0.0, sample: int = 5) -> Path:
    run_dir = Path(run_dir)
    path = Path(out) if out else run_dir / "report.html"
    text = build_report(run_dir, price_per_1k=price_per_1k, sample=sample)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def write_report_after_run(run_dir: Path, console: Any) -> Path | None:
    """For ``synthloom run``: a report problem is a warning line, never a failed run."""
    try:
        path = write_report(run_dir)
    except Exception as exc:  # noqa: BLE001 - the data is written; the report is extra
        console.print(f"[yellow]report not written[/]: {type(exc).__name__}: {exc}",
                      highlight=False)
        return None
    console.print(f"report -> {path}", highlight=False)
    return path
