"""Source2Synth's tabular variant (TQA, arXiv 2409.08239 §4.2) as synthloom steps.

* ``s2s_tables`` (source): one record per table: CSV files (a folder or one file), or a JSONL of
  ``{"name", "columns", "rows"}``.
* ``s2s_table_seed``: the seed, a statement about the table.
* ``s2s_sql``: an SQL query from the table and the seed, executed on a real SQLite copy of the
  table (``verify/sql.py``: read-only, time-limited worker); rejected, failing or empty queries
  are drops.
* ``s2s_table_question``: the question the SQL answers.
* ``s2s_table_answer``: the answer, written from the executed result; it must state a value of
  the result.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.recipe import resolve_data_path
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, SourceFailure, SourceStep, StepConfig, jsonl_source_rows
from synthloom.prompting.templated import TemplatedStep, parsed_object
from synthloom.verify.answers import code_block
from synthloom.verify.sql import (
    QueryResult,
    SQLExecutionError,
    SQLiteDatabase,
    SQLRejected,
    SQLTimeout,
    normalize_value,
)

_NAME = re.compile(r"[^A-Za-z0-9_]+")


def table_name(raw: str) -> str:
    name = _NAME.sub("_", raw).strip("_").lower() or "data"
    return name if not name[0].isdigit() else f"t_{name}"


def table_text(columns: list[str], rows: list[list[Any]], max_rows: int = 20) -> str:
    """The table as a markdown grid (what the prompts show)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows[:max_rows]]
    return "\n".join(lines)


def _typed(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


class TablesConfig(StepConfig):
    #: CSV files (a folder or one file) or a JSONL of {name, columns, rows}.
    path: str = "pkg:data/source2synth/tables"
    #: Rows kept per table (the rest are cut: prompts show the whole table).
    max_rows: int = Field(default=50, ge=1, le=500)


@register_step
class S2STables(SourceStep):
    """One record per table: ``table_name``, ``columns``, ``rows``, ``table_source``."""

    type_name = "s2s_tables"
    Config = TablesConfig
    config: TablesConfig

    def read(self, ctx: RunContext) -> Iterator[dict[str, Any] | SourceFailure]:
        root = resolve_data_path(self.config.path, ctx.recipe_dir)
        if not root.exists():
            raise RecipeError(f"tables not found: {self.config.path}")
        files = sorted(root.iterdir()) if root.is_dir() else [root]
        for file in files:
            if file.suffix == ".csv":
                with file.open(newline="", encoding="utf-8", errors="replace") as handle:
                    grid = list(csv.reader(handle))
                if len(grid) < 2:
                    yield SourceFailure(str(file), "EmptyTable", "no data rows")
                    continue
                yield self._table(file.stem, grid[0], grid[1:], file.name)
            elif file.suffix == ".jsonl":
                for item in jsonl_source_rows(file):
                    if isinstance(item, SourceFailure):
                        yield item
                        continue
                    number, row = item
                    yield self._table(str(row.get("name") or f"table_{number}"),
                                      list(row.get("columns") or []),
                                      list(row.get("rows") or []), f"{file.name}:{number}")

    def _table(self, name: str, columns: list[Any], rows: list[Any], where: str
               ) -> dict[str, Any] | SourceFailure:
        columns = [table_name(str(c)) for c in columns]
        if not columns or len(set(columns)) != len(columns):
            return SourceFailure(where, "BadColumns", f"columns {columns!r}")
        kept = [[_typed(str(v)) if isinstance(v, str) else v for v in row]
                for row in rows[: self.config.max_rows] if len(row) == len(columns)]
        if not kept:
            return SourceFailure(where, "EmptyTable", "no row has every column")
        return {"table_name": table_name(name), "columns": columns, "rows": kept,
                "table_source": where}


def build_database(folder: Path, record: dict[str, Any]) -> Path:
    """The record's table as a SQLite file (column types from the values)."""
    name, columns, rows = record["table_name"], list(record["columns"]), record["rows"]
    path = folder / f"{name}.sqlite"
    conn = sqlite3.connect(path)
    try:
        conn.execute(f'CREATE TABLE "{name}" ({", ".join(f"{c!r}" for c in columns)})'
                     .replace("'", '"'))
        conn.executemany(f'INSERT INTO "{name}" VALUES ({", ".join("?" * len(columns))})',
                         [[v if isinstance(v, int | float | str) or v is None else json.dumps(v)
                           for v in row] for row in rows])
        conn.commit()
    finally:
        conn.close()
    return path


async def execute_on_table(record: dict[str, Any], sql: str, timeout_s: float,
                           max_rows: int) -> QueryResult | str:
    """The query's result on a fresh SQLite copy of the record's table, or why it failed."""
    [result] = await execute_many(record, [sql], timeout_s, max_rows)
    return result


async def execute_many(record: dict[str, Any], queries: list[str], timeout_s: float,
                       max_rows: int) -> list[QueryResult | str]:
    """Each query's result (or why it failed) on one fresh SQLite copy of the record's table:
    one database and one worker process for all of them (the filter's k tries)."""
    def one(db: SQLiteDatabase, sql: str) -> QueryResult | str:
        try:
            return db.execute(sql)
        except SQLRejected as exc:
            return f"SQL rejected: {exc}"
        except SQLTimeout as exc:
            return f"SQL timed out: {exc}"
        except SQLExecutionError as exc:
            return f"SQL failed: {exc}"

    def run() -> list[QueryResult | str]:
        with tempfile.TemporaryDirectory(prefix="s2s-table-") as tmp:
            path = build_database(Path(tmp), record)
            with SQLiteDatabase(path, timeout_s=timeout_s, max_rows=max_rows) as db:
                return [one(db, sql) for sql in queries]
    return await asyncio.to_thread(run) if queries else []


def result_text(result: dict[str, Any]) -> str:
    rows = result.get("rows") or []
    return json.dumps({"columns": result.get("columns"), "rows": rows[:20]}, ensure_ascii=False)


def _variables(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "table_text": table_text(list(record["columns"]), record["rows"])}


def _object(props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props),
            "additionalProperties": False}


def _text(max_chars: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 3, "maxLength": max_chars}


class _S2SConfig(StepConfig):
    #: Jinja prompt template of the stage (gets the table as text and the record's columns).
    template: str
    #: Sampling temperature.
    temperature: float = 0.7
    #: Most tokens of the reply.
    max_tokens: int = 256


class _S2SStep(TemplatedStep, MapStep):
    uses_llm = True
    config: Any

    def reads(self) -> list[str]:
        return sorted(self.template().variables - {"table_text", "result_text"}
                      | {"columns", "rows", "table_name"})


class SeedConfig(_S2SConfig):
    #: Jinja prompt template of the seed (a statement about the table).
    template: str = "source2synth/prompts/table_seed.jinja"


@register_step
class S2STableSeed(_S2SStep):
    """The seed: one statement about the table (``seed``)."""

    type_name = "s2s_table_seed"
    Config = SeedConfig
    config: SeedConfig

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        response = await self.ask(ctx, _variables(record),
                                  schema=_object({"seed": _text(400)}))
        seed = str(parsed_object(response).get("seed", "")).strip()
        if len(seed.split()) < 3:
            return ItemResult.drop(f"seed: too short ({seed!r})")
        return self.output(response, {"seed": seed})


class SQLConfig(_S2SConfig):
    #: Jinja prompt template of the SQL query (from the table and the seed).
    template: str = "source2synth/prompts/table_sql.jinja"
    #: Sampling temperature of the query.
    temperature: float = 0.4
    #: Time limit of the query's execution, in seconds.
    timeout_s: float = 2.0
    #: A query returning more rows than this is dropped.
    max_rows: int = Field(default=50, ge=1, le=1000)


@register_step
class S2SSQL(_S2SStep):
    """An SQL query from the table and the seed, executed on a real SQLite copy of the table:
    ``sql`` and ``result`` (columns, rows, row_count)."""

    type_name = "s2s_sql"
    Config = SQLConfig
    config: SQLConfig

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        response = await self.ask(ctx, _variables(record))
        sql = (code_block(response.text, ("sql",)) or "").strip().rstrip(";")
        if not sql:
            return ItemResult.drop("sql: no ```sql block in the reply")
        result = await execute_on_table(record, sql, self.config.timeout_s, self.config.max_rows)
        if isinstance(result, str):
            return ItemResult.drop(f"sql: {result[:300]}")
        if not result.rows:
            return ItemResult.drop("sql: the query returned no rows")
        if result.truncated:
            return ItemResult.drop(f"sql: the query returned more than {self.config.max_rows} "
                                   "rows")
        return self.output(response, {"sql": sql, "result": result.to_json()})


class QuestionConfig(_S2SConfig):
    #: Jinja prompt template of the question the SQL answers.
    template: str = "source2synth/prompts/table_question.jinja"


@register_step
class S2STableQuestion(_S2SStep):
    """The natural-language question the SQL answers (``question``)."""

    type_name = "s2s_table_question"
    Config = QuestionConfig
    config: QuestionConfig

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        response = await self.ask(ctx, _variables(record),
                                  schema=_object({"question": _text(400)}))
        question = str(parsed_object(response).get("question", "")).strip()
        if len(question.split()) < 3:
            return ItemResult.drop(f"question: too short ({question!r})")
        if re.search(r"\bselect\b.*\bfrom\b", question, re.IGNORECASE):
            return ItemResult.drop("question: it is SQL, not a question")
        return self.output(response, {"question": question})


class AnswerConfig(_S2SConfig):
    #: Jinja prompt template of the answer, written from the executed result.
    template: str = "source2synth/prompts/table_answer.jinja"
    #: Sampling temperature of the answer.
    temperature: float = 0.2


@register_step
class S2STableAnswer(_S2SStep):
    """The answer from the executed result (``answer``); it must state one of the result's
    values (the first row's, normalised), else it is not grounded in the execution."""

    type_name = "s2s_table_answer"
    Config = AnswerConfig
    config: AnswerConfig

    def reads(self) -> list[str]:
        return ["question", "result", "sql"]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        result = dict(record["result"])
        response = await self.ask(ctx, {**record, "result_text": result_text(result)},
                                  schema=_object({"answer": _text(400)}))
        answer = str(parsed_object(response).get("answer", "")).strip()
        values = [v for row in result.get("rows") or [] for v in row if v is not None]
        if not any(states_value(answer, v) for v in values):
            return ItemResult.drop(f"answer: states no value of the SQL result ({answer[:120]!r};"
                                   f" result {result_text(result)[:160]})")
        return self.output(response, {"answer": answer})


def states_value(text: str, value: Any) -> bool:
    """Whether ``text`` names ``value`` (numbers by value, 6 digits; text case-insensitively)."""
    value = normalize_value(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        for number in re.findall(r"-?\d[\d,]*(?:\.\d+)?", text):
            try:
                if abs(float(number.replace(",", "")) - float(value)) < 1e-6:
                    return True
            except ValueError:
                continue
        return False
    shown = str(value).strip().lower()
    return bool(shown) and shown in text.lower()
