"""Unit tests of the method fixes the scale smoke (tests/integration/test_scale_smoke.py) led to:
each replaced per-item or all-pairs work by a structure built once, with the same results."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from synthloom.core.context import RunContext
from synthloom.core.records import make_record
from synthloom.methods.common.overlap import jaccard
from synthloom.methods.common.question_dedup import DedupQuestions
from synthloom.methods.kg.paths import build_graph
from synthloom.methods.text2sql.sqlexec import DatabasePool, query_result
from synthloom.methods.text2sql.sqlgen import insert_statements
from synthloom.quality.text import plain_text
from synthloom.verify.sql import SQLiteDatabase

BOOKSHOP = Path(__file__).resolve().parents[2] / "src/synthloom/data/text2sql/bookshop.sqlite"


# --- docqa_dedup_questions: prefix-filtered candidates, same drops as a full scan ---------------


def _full_scan(records: list[dict[str, Any]], threshold: float, group_by: str | None
               ) -> list[str | None]:
    """The step's rule, comparing each question with every kept one (the code before)."""
    kept: dict[Any, list[tuple[str, set[str], str]]] = {}
    out: list[str | None] = []
    for record in records:
        norm = plain_text(record["question"])
        tokens = set(norm.split())
        group = record.get(group_by) if group_by else None
        match = None
        for other_norm, other_tokens, other_id in kept.get(group, []):
            if norm == other_norm or (threshold <= 1 and jaccard(tokens, other_tokens)
                                      >= threshold):
                match = other_id
                break
        if match is None:
            kept.setdefault(group, []).append((norm, tokens, record["_meta"]["id"]))
        out.append(match)
    return out


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7, 0.8, 1.0, 1.1])
@pytest.mark.parametrize("group_by", [None, "doc_id"])
def test_dedup_questions_matches_a_full_scan(threshold: float, group_by: str | None) -> None:
    rng = random.Random(int(threshold * 10) + (group_by is None))
    vocab = ["what", "is", "the", "river", "city", "bridge", "built", "when", "who", "tide",
             "bee", "how", "many", "year", "old", "?", "!!"]
    records = []
    for i in range(400):  # a small vocabulary: many equal and near-equal questions
        question = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 7)))
        records.append(make_record({"question": question, "doc_id": i % 5}, step="qa",
                                   parents=[], sample_index=i))
    step = DedupQuestions(name="dq", group_by=group_by, jaccard=threshold)
    results = asyncio.run(step.process_all(records, RunContext(Path("."))))
    expected = _full_scan(records, threshold, group_by)
    assert any(e is not None for e in expected) and any(e is None for e in expected)
    for result, kept_id in zip(results, expected, strict=True):
        if kept_id is None:
            assert result.outputs and result.dropped is None
        else:  # dropped, naming the same kept record as the full scan
            assert result.dropped is not None and kept_id in result.dropped


# --- kg_paths: starts, degrees and sorted adjacency computed once ---------------------------


def test_kg_graph_indexes_match_their_definitions() -> None:
    rng = random.Random(7)
    entities = ["Hub", *(f"E{i}" for i in range(60))]
    records = []
    for _ in range(300):
        triples = []
        for _k in range(rng.randint(0, 4)):
            # Every chunk states something about the hub: its degree grows with the corpus.
            head = "Hub" if rng.random() < 0.5 else rng.choice(entities)
            tail = rng.choice(entities)
            if head != tail:
                triples.append({"head": head, "tail": tail, "relation": rng.choice("ab"),
                                "head_key": head.lower(), "tail_key": tail.lower()})
        records.append({"triples": triples})
    graph = build_graph(records)
    for r in range(len(records)):
        assert graph.starts.get(r, []) == [i for i, e in enumerate(graph.edges) if r in e.recs]
    for edge in graph.edges:
        assert edge.recs == sorted(set(edge.recs))  # each chunk once, in order
    for key, options in graph.adjacency.items():
        assert options == sorted(options)
        assert graph.degree(key) == len({other for _, other, _ in options})
        assert graph.degree(key) == graph.degree(key)  # memoised: the same answer again
    assert graph.degree("hub") > 50


# --- text2sql: one private copy per database and step ---------------------------------------


def test_database_pool_answers_like_fresh_copies() -> None:
    pool = DatabasePool()
    try:
        db = str(BOOKSHOP)
        for sql in ("SELECT * FROM books ORDER BY book_id LIMIT 3",
                    "SELECT count(*) FROM books", "SELECT title FROM books WHERE book_id > 2"):
            raw, result = pool.query_result(db, sql, max_rows=50, result_rows=5)
            fresh_raw, fresh_result = query_result(db, sql, max_rows=50, result_rows=5)
            assert result == fresh_result and raw.rows == fresh_raw.rows
        with SQLiteDatabase(db) as fresh:
            assert insert_statements(pool.get(db), 2) == insert_statements(fresh, 2)
        assert pool.get(db) is pool.get(Path(db))  # one copy per file
    finally:
        pool.close()


def test_text2sql_copies_each_database_once_per_step(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from synthloom.api import RunOptions, run_recipe
    from tests.support.instant_backend import InstantSchemaBackend

    opened: list[str] = []
    original = SQLiteDatabase.__init__

    def counting(self: SQLiteDatabase, path: Any, **kwargs: Any) -> None:
        opened.append(str(path))
        original(self, path, **kwargs)

    monkeypatch.setattr(SQLiteDatabase, "__init__", counting)
    options = RunOptions(backend=InstantSchemaBackend(),
                         overrides={"count": "60", "embedder": "hashing"})
    summary = asyncio.run(run_recipe("text2sql", tmp_path / "run", options)).to_json()
    sql = next(s for s in summary["steps"] if s["name"] == "sql")
    assert sql["in"] == 60 and sql["out"] > 0
    # The schema, sql and cot steps' copies (the cot step executes every sampled solution):
    # one per step, not one per item.
    assert len(opened) == 3, opened
