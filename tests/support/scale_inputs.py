"""Inputs at scale for every shipped recipe: ``scale_case(recipe, folder, n)`` writes >= n inputs
of the kind the recipe's params take and returns the ``--set`` overrides that point the recipe
at them (tests/integration/test_scale_smoke.py).

Everything is generated with seeded ``random`` (same seed, same files). Seed instructions mix in
the real prompts of ../shared/data/seed_instructions where that folder exists. A recipe with no
generator here makes ``scale_case`` raise: a new recipe must get one.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"

_PEOPLE = ("Ada Lovelace", "Niels Bohr", "Marie Curie", "Alan Turing", "Grace Hopper",
           "Ibn Battuta", "Hypatia", "Carl Linnaeus", "Rosalind Franklin", "Srinivasa Ramanujan",
           "Emmy Noether", "Leonhard Euler", "Mary Anning", "Gregor Mendel", "Ada Yonath",
           "Tu Youyou", "Katherine Johnson", "Nikola Tesla", "Hedy Lamarr", "Chien-Shiung Wu")
_PLACES = ("Vienna", "Lisbon", "Nairobi", "Kyoto", "Quito", "Tallinn", "Hobart", "Oslo",
           "Cusco", "Marrakesh", "Hanoi", "Bergen", "Valparaiso", "Tbilisi", "Galway", "Ghent",
           "Porto", "Krakow", "Izmir", "Lyon", "Bruges", "Leipzig", "Trieste", "Seville")
_THINGS = ("lighthouse", "observatory", "canal", "printing press", "tram line", "seed bank",
           "glass works", "weather station", "botanical garden", "clock tower", "paper mill",
           "salt mine", "ferry service", "railway bridge", "public library", "fish market",
           "brewery", "textile mill", "radio mast", "harbour crane")
_TOPICS = ("composting", "bread baking", "bicycle repair", "tide tables", "bee keeping",
           "budget planning", "git branching", "SQL joins", "compound interest", "vaccines",
           "solar panels", "map reading", "knot tying", "first aid", "houseplants", "chess",
           "pottery", "bird watching", "rainwater tanks", "sourdough", "photography",
           "woodworking", "cycling safety", "meal planning", "unit conversion", "recycling")
_VERBS = ("built", "repaired", "mapped", "funded", "studied", "described", "rebuilt", "opened",
          "visited", "documented", "expanded", "restored")
_ITEMS = ("apples", "marbles", "books", "pencils", "stickers", "cookies", "tickets", "shells",
          "cards", "coins", "plants", "bottles", "bricks", "eggs", "candles", "ribbons")


@dataclass
class ScaleCase:
    """What a recipe runs on at scale: ``--set`` overrides and why any of them departs from
    the recipe's defaults."""

    overrides: dict[str, str]
    #: The least number of inputs each source must read (one entry per source).
    min_source_in: int
    notes: list[str] = field(default_factory=list)


# --- shared builders -------------------------------------------------------------------------


def _document(rng: random.Random, i: int) -> tuple[str, str, list[str]]:
    """A small document: title, paragraphs with names, places and numbers, a FAQ section."""
    person, other = rng.sample(_PEOPLE, 2)
    place, town = rng.sample(_PLACES, 2)
    thing, topic = rng.choice(_THINGS), rng.choice(_TOPICS)
    year, size, cost = rng.randint(1700, 2020), rng.randint(3, 400), rng.randint(10, 9000)
    title = f"The {thing} of {place} ({i})"
    paragraphs = [
        f"The {thing} of {place} was {rng.choice(_VERBS)} by {person} in {year}. It stands "
        f"{size} metres from the old market and served the people of {place} for many years. "
        f"{person} worked with {other}, who came from {town}, on its design and its daily use.",
        f"In {year + rng.randint(1, 60)} the city of {place} spent {cost} crowns on the {thing}. "
        f"{other} wrote that the work took {rng.randint(2, 40)} months and needed "
        f"{rng.randint(5, 200)} workers. Visitors from {town} still travel to {place} to see it.",
        f"Local guides also teach {topic}. A short course on {topic} lasts {rng.randint(1, 9)} "
        f"days and costs {rng.randint(5, 90)} crowns; groups of {rng.randint(4, 20)} people "
        f"meet near the {thing} every week.",
    ]
    faq = [
        f"Q: How do I get to the {thing} of {place}? A: Take the tram from the central station "
        f"to the harbour stop and walk {rng.randint(2, 15)} minutes along the river.",
        f"Q: Who {rng.choice(_VERBS)} the {thing}? A: {person} {rng.choice(_VERBS)} it in "
        f"{year}, with help from {other} of {town}.",
    ]
    return title, "\n\n".join(paragraphs), faq


def write_documents(folder: Path, n: int, *, seed: int = 0, html_share: float = 0.3,
                    suffixes: tuple[str, ...] = (".md", ".txt")) -> Path:
    """``n`` small documents in ``folder``: Markdown and text, and HTML pages for a share."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for i in range(n):
        title, body, faq = _document(rng, i)
        if rng.random() < html_share:
            paras = "".join(f"<p>{p}</p>" for p in body.split("\n\n"))
            items = "".join(f"<li>{q}</li>" for q in faq)
            text = (f"<html><head><title>{title}</title></head><body><h1>{title}</h1>{paras}"
                    f"<h2>Frequently asked questions</h2><ul>{items}</ul></body></html>")
            (folder / f"doc_{i:05d}.html").write_text(text, encoding="utf-8")
            continue
        suffix = suffixes[i % len(suffixes)]
        head = f"# {title}\n\n" if suffix == ".md" else f"{title}\n\n"
        faq_text = "\n\n".join(faq)
        (folder / f"doc_{i:05d}{suffix}").write_text(
            f"{head}{body}\n\nFrequently asked questions\n\n{faq_text}\n", encoding="utf-8")
    return folder


def _real_instructions() -> list[str]:
    """The real seed prompts of ../shared/data (empty in a fresh clone)."""
    folder = SHARED / "seed_instructions"
    out: list[str] = []
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            text = row if isinstance(row, str) else row.get("instruction") or ""
            if isinstance(text, str) and len(text.split()) >= 3:
                out.append(" ".join(text.split()))
    return out


def instructions(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct seed instructions: the real ones first, then generated ones."""
    rng = random.Random(seed)
    out = list(dict.fromkeys(_real_instructions()))[: n // 2]
    forms = ("Explain how {t} works to someone from {p} who has never tried it.",
             "Write a short plan for learning {t} in {k} weeks, with one goal per week.",
             "What are {k} common mistakes people make with {t}, and how can they avoid them?",
             "Compare {t} in {p} with {t} in {q}: costs, time and tools.",
             "Give step-by-step instructions for {t} for a group of {k} beginners.",
             "Summarise the history of the {th} of {p} in {k} sentences.",
             "Draft an email to {x} asking for advice on {t} before a trip to {p}.")
    seen = set(out)
    while len(out) < n:
        text = rng.choice(forms).format(t=rng.choice(_TOPICS), p=rng.choice(_PLACES),
                                        q=rng.choice(_PLACES), k=rng.randint(2, 12),
                                        th=rng.choice(_THINGS), x=rng.choice(_PEOPLE))
        text = f"{text} (case {len(out)})"  # distinct, so exact dedup keeps every seed
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out[:n]


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def math_problems(n: int, seed: int = 0) -> list[dict[str, str]]:
    """GSM8K-shaped problems: a question, and a worked answer ending in ``#### N``."""
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    while len(rows) < n:
        name, item = rng.choice(("Ana", "Ben", "Chloe", "Dev", "Eli", "Fay")), rng.choice(_ITEMS)
        a, b, c = rng.randint(10, 90), rng.randint(2, 9), rng.randint(1, 30)
        kind = len(rows) % 4
        if kind == 3:  # one number, and it is the answer: the easy quarter of the set
            question = (f"{name} has {a} {item} in a box and nobody takes any. How many "
                        f"{item} are in the box?")
            steps, gold = f"Nothing changes, so there are {a} {item}.", a
        elif kind == 0:
            question = (f"{name} has {a} {item}. She buys {b} packs of {c} {item} each. "
                        f"How many {item} does she have now?")
            steps, gold = f"{b} * {c} = <<{b}*{c}={b * c}>>{b * c}\n{a} + {b * c} = " \
                          f"<<{a}+{b * c}={a + b * c}>>{a + b * c}", a + b * c
        elif kind == 1:
            question = (f"A shop sells {item} for {b} dollars each. {name} buys {c} {item} and "
                        f"pays with a {a + b * c} dollar note. How much change does {name} get?")
            steps, gold = f"{b} * {c} = <<{b}*{c}={b * c}>>{b * c}\n{a + b * c} - {b * c} = " \
                          f"<<{a + b * c}-{b * c}={a}>>{a}", a
        else:
            question = (f"{name} packs {a * b} {item} into {b} equal boxes and then adds {c} "
                        f"more to each box. How many {item} are in one box?")
            steps, gold = f"{a * b} / {b} = <<{a * b}/{b}={a}>>{a}\n{a} + {c} = " \
                          f"<<{a}+{c}={a + c}>>{a + c}", a + c
        if question not in seen:  # distinct problems: no source drops identical rows
            seen.add(question)
            rows.append({"question": question, "answer": f"{steps}\n#### {gold}"})
    return rows


def code_snippets(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Small real-looking Python functions (3..40 lines), each with an origin."""
    rng = random.Random(seed)
    bodies = (
        "    total = 0\n    for value in values:\n        total += value * {k}\n    return total",
        "    seen = set()\n    out = []\n    for item in values:\n        if item not in seen:\n"
        "            seen.add(item)\n            out.append(item)\n    return out[:{k}]",
        "    words = text.split()\n    counts = {{}}\n    for w in words:\n"
        "        counts[w] = counts.get(w, 0) + {k}\n    return counts",
        "    if not values:\n        return None\n    values = sorted(values)\n"
        "    middle = len(values) // 2\n    return values[middle] + {k}",
    )
    rows = []
    for i in range(n):
        form = i % len(bodies)
        arg = "text" if form == 2 else "values"
        name = f"{rng.choice(_VERBS)}_{rng.choice(_ITEMS)}_{i}"
        code = f"def {name}({arg}):\n    \"\"\"Helper {i}.\"\"\"\n" + \
            bodies[form].format(k=rng.randint(1, 9))
        rows.append({"code": code, "origin": f"scale_inputs/snippet_{i}.py"})
    return rows


# --- one generator per recipe ----------------------------------------------------------------


def _docs(recipe_param: str = "corpus", **extra: str) -> Callable[[Path, int], ScaleCase]:
    def build(folder: Path, n: int) -> ScaleCase:
        return ScaleCase({recipe_param: str(write_documents(folder / "docs", n)), **extra}, n)
    return build


def _math(folder: Path, n: int) -> ScaleCase:
    return ScaleCase({"input": str(write_jsonl(folder / "problems.jsonl", math_problems(n)))}, n)


def _kg_reasoning(folder: Path, n: int) -> ScaleCase:
    # GSM8K-shaped problems and a KG file of the user's that links each problem's item to its
    # answer (MedReason's KG is external): the instant backend's own triples are single words,
    # never the number a math answer is, so without the file no path would reach an answer.
    case = _math(folder, n)
    rows = [json.loads(line) for line in Path(case.overrides["input"]).read_text().splitlines()]
    triples = {(item, "is counted in", row["answer"].rsplit("####", 1)[1].strip())
               for row in rows for item in _ITEMS if f" {item}" in row["question"]}
    graph = write_jsonl(folder / "kg.jsonl", [{"head": h, "relation": r, "tail": t}
                                              for h, r, t in sorted(triples)])
    return ScaleCase({**case.overrides, "scope": "all", "graph_file": str(graph)}, n,
                     ["graph_file: a KG that links items to answers (the instant backend's "
                      "triples never name a number)", "scope=all: one graph, the file's"])


def _seeds(param: str, key: str = "instruction") -> Callable[[Path, int], ScaleCase]:
    def build(folder: Path, n: int) -> ScaleCase:
        rows = [{key: text} for text in instructions(n)]
        return ScaleCase({param: str(write_jsonl(folder / "seeds.jsonl", rows))}, n)
    return build


def _quickstart(folder: Path, n: int) -> ScaleCase:
    return ScaleCase({"docs": str(write_documents(folder / "docs", n, html_share=0.0))}, n)


def _count(folder: Path, n: int) -> ScaleCase:
    return ScaleCase({"count": str(n)}, n)


def _apigen(folder: Path, n: int) -> ScaleCase:
    # In process: a sandboxed process per call (~0.5 s on 2 cores) for every call that passes
    # the format stage would take minutes; the sandboxed path has its own tests. The shipped
    # pool of simulated APIs joins the library, so simulated calls run at scale too.
    return ScaleCase({"count": str(n), "sandbox": "false",
                      "simulated": "pkg:tools/library/simulated.json"}, n,
                     ["sandbox=false: library calls in process, not a process per call",
                      "simulated: the shipped simulated APIs join the executable ones"])


def _agent_trajectories(folder: Path, n: int) -> ScaleCase:
    # The instant backend's simulated user never says ###STOP###: the state is judged at the
    # cap (stop_required=false), and small caps keep the ~20-call rollouts short.
    return ScaleCase({"count": str(n), "stop_required": "false", "k": "2", "max_turns": "2",
                      "max_steps": "4"}, n,
                     ["stop_required=false: the instant user never ends a conversation",
                      "k=2, max_turns=2, max_steps=4: short rollouts at scale"])


def _toolformer(folder: Path, n: int) -> ScaleCase:
    # One text per document, one position per tool and one call each: ~12 echo requests per
    # text instead of the paper's k = m = 5 (~150), which the smoke does not need.
    docs = write_documents(folder / "docs", n)
    return ScaleCase({"corpus": str(docs), "max_chunks_per_doc": "1", "positions": "1",
                      "calls_per_position": "1", "today": "2024-05-01"}, n,
                     ["positions=1, calls_per_position=1: fewer echo requests per text",
                      "today: a date for the calendar (the documents carry none)"])


def _latm_tasks(folder: Path, n: int) -> ScaleCase:
    # n tasks of 12 examples (5 train, 5 validation, 2 test), each its own number game.
    rng = random.Random(0)
    rows = []
    for i in range(n):
        k = rng.randint(2, 9)
        examples = [{"input": f"Task {i}: what is {x} times {k}?", "target": str(x * k)}
                    for x in rng.sample(range(1, 200), 12)]
        rows.append({"name": f"times_{k}_{i}", "examples": examples})
    return ScaleCase({"tasks": str(write_jsonl(folder / "tasks.jsonl", rows)),
                      "check_gold": "false", "keep_wrong": "true", "tries": "2"}, n,
                     ["check_gold=false: the instant backend's unit tests name no gold answer",
                      "keep_wrong=true: its tool-user answers are scored, not right",
                      "tries=2: fewer repair calls (each a sandbox run) at scale"])


def _voyager(folder: Path, n: int) -> ScaleCase:
    # n curriculum steps: 100 explorers x n/100 steps, concurrently. The instant backend's
    # programs never pass the world's check of the fixed first task ("Mine 1 log"), which
    # would then be every step: the curriculum proposes from the start instead.
    explorers = 100
    return ScaleCase({"explorers": str(explorers), "tasks": str(-(-n // explorers)),
                      "first_task": "null", "embedder": "hashing"}, n,
                     ["first_task=null: the curriculum proposes every task",
                      "embedder=hashing: no model to load for skill retrieval"])


def _s2s_tables(folder: Path, n: int) -> ScaleCase:
    # n small tables (name, count, price) of made-up items, one JSONL row each.
    rng = random.Random(0)
    rows = []
    for i in range(n):
        items = rng.sample(_ITEMS, 5)
        rows.append({"name": f"stock_{i}", "columns": ["item", "count", "price"],
                     "rows": [[item, rng.randint(1, 90), round(rng.uniform(1, 20), 2)]
                              for item in items]})
    # Each SQL execution is a fresh SQLite copy and worker process: the sql stage runs all
    # 1,000; the filter answers in text here, not through 3 more SQL runs per entry.
    return ScaleCase({"tables": str(write_jsonl(folder / "tables.jsonl", rows)),
                      "filter_mode": "answer"}, n,
                     ["filter_mode=answer: one SQLite worker per entry, not two, on 2 cores"])


def _logic(folder: Path, n: int) -> ScaleCase:
    from synthloom.verify.logic import TASKS

    per_task = math.ceil(n / len(TASKS))  # count is per task: 14 tasks x 72 >= 1,000 items
    return ScaleCase({"count": str(per_task)}, n)


def _magpie(folder: Path, n: int) -> ScaleCase:
    # "auto" reads the chat template out of a GGUF file; the instant backend has none.
    return ScaleCase({"count": str(n), "template": "chatml", "embedder": "hashing"}, n,
                     ["template=chatml: the instant backend has no GGUF chat template",
                      "embedder=hashing: the distance tag's engine path without a model load"])


def _camel(folder: Path, n: int) -> ScaleCase:
    rng = random.Random(0)
    rows = [{"assistant_role": f"{rng.choice(_TOPICS).title()} Expert {i}",
             "user_role": f"Visitor from {rng.choice(_PLACES)} {i}",
             "tasks": [f"Plan a {rng.randint(2, 9)}-day {rng.choice(_TOPICS)} course near the "
                       f"{rng.choice(_THINGS)} of {rng.choice(_PLACES)}"]} for i in range(n)]
    return ScaleCase({"tasks": str(write_jsonl(folder / "tasks.jsonl", rows))}, n)


def _camel_society(folder: Path, n: int) -> ScaleCase:
    side = math.ceil(math.sqrt(n))  # side x side role pairs >= n
    roles = {"assistant_roles": [f"{t.title()} Expert {i}" for i, t in
                                 enumerate((_TOPICS * 3)[:side])],
             "user_roles": [f"Resident of {p} {i}" for i, p in enumerate((_PLACES * 3)[:side])]}
    path = folder / "roles.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(roles), encoding="utf-8")
    return ScaleCase({"roles": str(path)}, side * side)


def _snippets(folder: Path, n: int) -> ScaleCase:
    return ScaleCase({"snippets": str(write_jsonl(folder / "snippets.jsonl",
                                                  code_snippets(n)))}, n)


def _dedup(folder: Path, n: int) -> ScaleCase:
    rng = random.Random(0)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        if i % 10 == 9:  # every tenth record repeats an earlier one (exact or near)
            earlier = dict(rng.choice(rows))
            if i % 20 == 19:
                earlier["text"] += " Indeed."
            rows.append({**earlier, "id": i})
            continue
        title, body, _ = _document(rng, i)
        rows.append({"id": i, "text": f"{title}. {body}"})
    return ScaleCase({"input": str(write_jsonl(folder / "input.jsonl", rows))}, n)


def _orca(folder: Path, n: int) -> ScaleCase:
    rows = [{"question": r["question"], "answer": r["answer"].rsplit("#### ", 1)[1]}
            for r in math_problems(n // 2, seed=1)]
    rows += [{"instruction": text} for text in instructions(n - len(rows), seed=2)]
    return ScaleCase({"input": str(write_jsonl(folder / "questions.jsonl", rows))}, n)


def _self_instruct(folder: Path, n: int) -> ScaleCase:
    rows = [{"id": f"scale_seed_{i}", "name": f"task_{i}", "instruction": text,
             "instances": [{"input": "", "output": f"An example answer for task {i}."}],
             "is_classification": i % 7 == 0} for i, text in enumerate(instructions(n))]
    return ScaleCase({"seeds": str(write_jsonl(folder / "seed_tasks.jsonl", rows))}, n)


def _synthquestions(folder: Path, n: int) -> ScaleCase:
    seeds = write_jsonl(folder / "seeds.jsonl", [{"instruction": t} for t in instructions(n)])
    corpus = write_documents(folder / "docs", n)
    # hashing embeddings: the local MiniLM would spend minutes of CPU on 2,000 texts here.
    return ScaleCase({"seeds": str(seeds), "corpus": str(corpus), "embedder": "hashing"}, n,
                     ["embedder=hashing: no sentence-transformers model in a smoke test"])


def _targen(folder: Path, n: int) -> ScaleCase:
    rng = random.Random(0)
    tasks = [{"name": f"task_{i}",
              "description": f"Decide whether a short note about {rng.choice(_TOPICS)} in "
                             f"{rng.choice(_PLACES)} is positive or negative overall.",
              "fields": {"text": "a note of one to three sentences"},
              "labels": {"positive": "the writer is pleased", "negative": "the writer is not"}}
             for i in range(n)]
    path = folder / "tasks.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(tasks), encoding="utf-8")
    return ScaleCase({"task": str(path)}, n)


def _text2sql(folder: Path, n: int) -> ScaleCase:
    dbs = folder / "dbs"
    dbs.mkdir(parents=True, exist_ok=True)
    from synthloom.core.recipe import resolve_data_path

    shutil.copy(resolve_data_path("pkg:data/text2sql/bookshop.sqlite", None), dbs / "bookshop.sqlite")
    chinook = SHARED / "sql" / "chinook.sqlite"
    if chinook.is_file():  # a real database beside the project's own, where present
        shutil.copy(chinook, dbs / "chinook.sqlite")
    return ScaleCase({"database": str(dbs), "count": str(n)}, n)


def _textbook(folder: Path, n: int) -> ScaleCase:
    rng = random.Random(0)
    topics = [f"{rng.choice(_TOPICS).capitalize()} around the {rng.choice(_THINGS)} ({i})"
              for i in range(n)]
    path = folder / "topics.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(topics) + "\n", encoding="utf-8")
    return ScaleCase({"topics": str(path), "count": str(n)}, n)


GENERATORS: dict[str, Callable[[Path, int], ScaleCase]] = {
    "agent-trajectories": _agent_trajectories,
    "apigen": _apigen,
    "arithmetic": _count,
    "backtranslation": _docs(),
    "camel": _camel,
    "camel-society": _camel_society,
    "code-tests": _snippets,
    "codeclm": _seeds("seeds"),
    "constitutional": _seeds("prompts"),
    "dedup": _dedup,
    "doc-qa": _docs(),
    "evol-instruct": _seeds("seeds"),
    "kg-questions": _docs(),
    "kg-reasoning": _kg_reasoning,
    "logic": _logic,
    "logic-solve": _logic,
    "long-context": _docs(),
    "magpie": _magpie,
    "mathgenie": _math,
    "metamath": _math,
    "multihop-qa": _docs(),
    "orca": _orca,
    "personas": _docs(embedder="hashing"),
    "pot": _math,
    "quickstart": _quickstart,
    "reasoning-distill": _math,
    "self-consistency": _math,
    "source2synth": _docs(),
    "source2synth-tables": _s2s_tables,
    "self-instruct": _self_instruct,
    "star": _math,
    "synthquestions": _synthquestions,
    "targen": _targen,
    "text2sql": _text2sql,
    "textbook": _textbook,
    "tool-maker": _latm_tasks,
    "toolformer": _toolformer,
    "voyager": _voyager,
    "web-mining": _docs(),
}


def scale_case(recipe: str, folder: Path, n: int = 1000) -> ScaleCase:
    """Write ``recipe``'s inputs (>= n) under ``folder``; KeyError for a recipe with no
    generator (add one to GENERATORS)."""
    try:
        build = GENERATORS[recipe]
    except KeyError:
        raise KeyError(f"tests/support/scale_inputs.py has no input generator for recipe "
                       f"{recipe!r}: add one to GENERATORS") from None
    return build(folder, n)
