"""OmniSQL's pipeline (Li et al. 2025, arXiv 2503.02240) as synthloom steps.

* ``text2sql_tasks`` (source): one task per item: a database (a real SQLite file, or a domain
  whose schema the model will propose), a complexity level and a question style. Levels cycle
  over the tasks; the style is drawn per task from the run seed.
* ``text2sql_schema``: a real database's CREATE statements; or the model's schema proposal
  (structured output), sanitised and materialised as SQLite with generated rows.
* ``text2sql_sql``: the model writes a query of the task's level; sqlglot parses it; it runs on
  a private read-only copy (``verify/sql.py``: time limit, row cap); only a query that runs and
  returns rows is kept, with its normalised ``result`` (everything else is dropped with the
  error).
* ``text2sql_question``: back-translation of the query into a question in the task's style.
* ``text2sql_cot``: a step-by-step reasoning, to which the verified query is appended, so the
  chain of thought always ends with SQL that is known to run.
"""

from __future__ import annotations

import asyncio
import random
import re
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.fingerprint import text_hash
from synthloom.core.recipe import resolve_data_path
from synthloom.core.records import ItemResult, Output
from synthloom.core.registry import register_step
from synthloom.core.steps import MapStep, SourceStep, StepConfig
from synthloom.methods.text2sql.sqlexec import (
    COMPLEXITIES,
    DatabasePool,
    clean_sql,
    complexity_matches,
    parse_sql,
    sql_features,
)
from synthloom.methods.text2sql.synthdb import (
    PROPOSAL_SCHEMA,
    identifier,
    materialize,
    sanitize_schema,
)
from synthloom.prompting.templated import TemplatedStep
from synthloom.verify.sql import SQLExecutionError, SQLiteDatabase, SQLRejected, SQLTimeout

#: What each level asks for (the prompt's words; detection is ``sql_features``).
COMPLEXITY_DESCRIPTIONS = {
    "simple": "read from a single table, filter rows with WHERE, and maybe sort with ORDER BY "
              "and LIMIT; no joins, no aggregation, no subqueries.",
    "joins": "join two or three tables on their key columns and return columns from more "
             "than one table.",
    "aggregation": "group rows with GROUP BY and compute COUNT, SUM, AVG, MIN or MAX per "
                   "group, optionally filtered with HAVING.",
    "nested": "use a subquery (in WHERE ... IN (SELECT ...), a scalar subquery, or a WITH "
              "clause) whose result the outer query uses.",
    "window": "use a window function such as ROW_NUMBER(), RANK() or SUM(...) OVER "
              "(PARTITION BY ... ORDER BY ...).",
}

#: OmniSQL's nine question styles.
STYLE_DESCRIPTIONS = {
    "formal": "formal vocabulary and complete, grammatical sentences.",
    "colloquial": "relaxed, conversational everyday language, as if talking to a colleague.",
    "imperative": "a direct command, such as 'List ...', 'Find ...' or 'Show ...'.",
    "interrogative": "a direct question beginning with a question word such as What, Which, "
                     "Who or How many.",
    "descriptive": "a detailed description of the information wanted and the conditions it "
                   "must meet.",
    "concise": "as short and direct as possible, only the essential words.",
    "vague": "loose wording that leaves some details implicit, so the reader must infer what "
             "is meant from common knowledge.",
    "metaphorical": "figurative language or a metaphor for the data asked for, while the "
                    "meaning stays clear.",
    "multi-turn": "a short dialogue: lines starting 'User:' and 'Assistant:' in which the "
                  "user narrows down the request over two or three turns.",
}
STYLES = tuple(STYLE_DESCRIPTIONS)

DEFAULT_DOMAINS = [
    "a public library lending books", "a bicycle rental service", "a small hospital clinic",
    "an online music store", "a university course registration system",
    "a restaurant taking orders", "a football league", "a veterinary practice",
]
DB_SUFFIXES = (".sqlite", ".sqlite3", ".db")


# --- tasks ---------------------------------------------------------------------------------


class TasksConfig(StepConfig):
    #: A SQLite file, a folder of them (``*.sqlite``, ``*.sqlite3``, ``*.db``), or ``synth``:
    #: the model proposes a schema per domain.
    database: str = "pkg:data/text2sql/bookshop.sqlite"
    #: Domains for ``database: synth`` (tasks cycle over them).
    domains: list[str] = Field(default_factory=lambda: list(DEFAULT_DOMAINS))
    count: int = Field(default=20, ge=0)
    complexities: list[str] = Field(default_factory=lambda: list(COMPLEXITIES))
    styles: list[str] = Field(default_factory=lambda: list(STYLES))

    @field_validator("complexities")
    @classmethod
    def _levels(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(COMPLEXITIES))
        if unknown or not value:
            raise ValueError(f"complexities must be a non-empty subset of {list(COMPLEXITIES)}"
                             f"; unknown: {unknown}")
        return value

    @field_validator("styles")
    @classmethod
    def _styles(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(STYLES))
        if unknown or not value:
            raise ValueError(f"styles must be a non-empty subset of {list(STYLES)}; "
                             f"unknown: {unknown}")
        return value


def database_files(spec: str, base: Path | None) -> list[Path]:
    """The SQLite files named by ``spec`` (a file or a folder), absolute, in name order."""
    path = resolve_data_path(spec, base)
    if path.is_file():
        return [path.resolve()]
    if path.is_dir():
        found = sorted(p.resolve() for p in path.iterdir() if p.suffix in DB_SUFFIXES)
        if found:
            return found
        raise RecipeError(f"no SQLite files ({', '.join(DB_SUFFIXES)}) in {path}")
    raise RecipeError(f"database not found: {spec} (a SQLite file, a folder of them, or "
                      "'synth')")


@register_step
class Text2SQLTasks(SourceStep):
    """``count`` tasks: task_index, database (a path, or None for a domain to synthesise),
    domain, complexity (cycling), style (drawn from the run seed per task)."""

    type_name = "text2sql_tasks"
    Config = TasksConfig
    config: TasksConfig

    def read(self, ctx: RunContext) -> Iterator[dict[str, Any]]:
        cfg = self.config
        synth = cfg.database.strip().lower() == "synth"
        if synth and not cfg.domains:
            raise RecipeError("database: synth needs at least one domain")
        files = [] if synth else database_files(cfg.database, ctx.recipe_dir)
        for i in range(cfg.count):
            # A per-task generator: a task's style does not depend on how many came before.
            style = random.Random(f"text2sql-style:{ctx.seed}:{i}").choice(cfg.styles)
            yield {
                "task_index": i,
                "database": None if synth else str(files[i % len(files)]),
                "domain": cfg.domains[i % len(cfg.domains)] if synth else None,
                "complexity": cfg.complexities[i % len(cfg.complexities)],
                "style": style,
            }


# --- schema --------------------------------------------------------------------------------


class SchemaConfig(StepConfig):
    template: str = "text2sql/prompts/schema.jinja"
    rows_per_table: int = Field(default=20, ge=1, le=10_000)
    temperature: float = 0.7
    max_tokens: int = 900


@register_step
class Text2SQLSchema(TemplatedStep, MapStep):
    """A real database's schema, or a synthesised one (model proposal → SQLite file)."""

    type_name = "text2sql_schema"
    uses_llm = True
    Config = SchemaConfig
    config: SchemaConfig

    def setup(self, ctx: RunContext) -> None:
        super().setup(ctx)
        self._locks: dict[str, asyncio.Lock] = {}
        self._pool: DatabasePool | None = None

    def reads(self) -> list[str]:
        return ["database", "domain"]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        database = record.get("database")
        if database:
            pool = _pool_of(self)
            schema = await asyncio.to_thread(
                pool.memo, (str(database), -1), lambda: pool.get(database).schema())
            return Output(columns={"database": database, "db_id": Path(database).stem,
                                   "schema": schema, "schema_origin": "file"})
        domain = str(record.get("domain") or "").strip()
        if not domain:
            return ItemResult.drop("task has neither a database nor a domain")
        # Tasks of one domain share one proposal: the first asks, the others hit the LLM
        # cache (same prompt, same per-domain seed) once the lock is free.
        lock = self._locks.setdefault(domain, asyncio.Lock())
        async with lock:
            seed = (ctx.run.seed * 1_000_003 + int(text_hash(domain)[:8], 16)) % 2**31
            response = await self.ask(ctx, {"domain": domain}, schema=PROPOSAL_SCHEMA,
                                      seed=seed)
        proposal = sanitize_schema(response.parsed)
        if not proposal.tables:
            why = "; ".join(proposal.notes) or "no tables"
            return ItemResult.drop(f"schema proposal unusable: {why}")
        stem = identifier(domain) or "domain"
        folder = ctx.run.run_dir / "text2sql_databases"
        path = await asyncio.to_thread(materialize, proposal, folder, stem[:40],
                                       rows_per_table=self.config.rows_per_table,
                                       seed=ctx.run.seed)
        return self.output(response, {
            "database": str(path.resolve()), "db_id": path.stem,
            "schema": proposal.schema_text(), "schema_origin": "synthesized",
            "schema_notes": proposal.notes})


def _pool_of(step: Any) -> DatabasePool:
    """The step's database pool, made on first use (so a step pickles before it) and closed
    when the step is collected or the interpreter exits."""
    pool = getattr(step, "_pool", None)
    if pool is None:
        pool = step._pool = DatabasePool()
        weakref.finalize(step, pool.close)
    return pool


# --- SQL -----------------------------------------------------------------------------------


class SqlConfig(StepConfig):
    template: str = "text2sql/prompts/sql.jinja"
    temperature: float = 0.8
    max_tokens: int = 256
    sql_max_chars: int = Field(default=600, ge=20, le=900)
    #: Example rows per table shown in the prompt (OmniSQL shows values too).
    sample_rows: int = Field(default=2, ge=0, le=10)
    timeout_s: float = 2.0
    #: Row cap of the execution; a query returning more rows is dropped (too broad to check).
    max_rows: int = Field(default=1000, ge=1)
    #: Rows kept in the record's ``result`` (the first, in the result's defined order).
    result_rows: int = Field(default=10, ge=1)
    #: Drop queries that lack the requested level's feature (a JOIN for ``joins`` ...).
    require_complexity: bool = False
    #: Queries sampled per task; the first that runs and returns rows is kept (OmniSQL
    #: samples many and filters; more candidates help a weak model).
    candidates: int = Field(default=1, ge=1, le=16)


def sample_rows_text(database: str, per_table: int, pool: DatabasePool | None = None) -> str:
    """A few rows of each table, one line each, values cut to 40 characters (prompt context).
    With a ``pool``: its copy of the database, and computed once per database."""
    if per_table <= 0:
        return ""
    if pool is not None:
        return pool.memo((database, per_table), lambda: _sample_rows(pool.get(database),
                                                                     per_table))
    with SQLiteDatabase(database) as db:
        return _sample_rows(db, per_table)


def _sample_rows(db: SQLiteDatabase, per_table: int) -> str:
    names = re.findall(r"CREATE TABLE\s+[\"`\[]?([^\s\"`\]\(]+)", db.schema(), re.I)
    lines = []
    for name in names:
        try:
            result = db.execute(f'SELECT * FROM "{name}" LIMIT {per_table}')
        except (SQLRejected, SQLExecutionError, SQLTimeout):
            continue
        for row in result.rows:
            values = ", ".join(_short(v) for v in row)
            lines.append(f"{name}: ({values})")
    return "\n".join(lines)


def _short(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= 37 else value[:34] + "...")
    text = "NULL" if value is None else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


@register_step
class Text2SQLQuery(TemplatedStep, MapStep):
    """The model's query for the task's level; kept only if it parses, runs and returns rows."""

    type_name = "text2sql_sql"
    uses_llm = True
    Config = SqlConfig
    config: SqlConfig

    def setup(self, ctx: RunContext) -> None:
        super().setup(ctx)
        self._pool: DatabasePool | None = None

    def reads(self) -> list[str]:
        # task_index: two tasks of one database and level must still be two queries.
        return ["task_index", "database", "schema", "complexity"]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        database, level = str(record["database"]), str(record["complexity"])
        samples = await asyncio.to_thread(sample_rows_text, database, cfg.sample_rows,
                                          _pool_of(self))
        variables = {"schema": record["schema"], "samples": samples, "complexity": level,
                     "complexity_description": COMPLEXITY_DESCRIPTIONS[level]}
        schema = {"type": "object", "properties": {"sql": {
            "type": "string", "minLength": 8, "maxLength": cfg.sql_max_chars}},
            "required": ["sql"], "additionalProperties": False}
        responses = await self.ask_n(ctx, variables, cfg.candidates, schema=schema)
        problems = []
        for response in responses:
            verdict = await self._check(str((response.parsed or {}).get("sql", "")), database,
                                        level)
            if isinstance(verdict, str):
                problems.append(verdict)
                continue
            output = self.output(response, verdict)
            # Every candidate's tokens are this record's cost.
            output.usage = _sum_usage(r.usage.to_json() for r in responses)
            output.meta["candidates_tried"] = len(problems) + 1
            return output
        if len(problems) == 1:
            return ItemResult.drop(problems[0])
        return ItemResult.drop(f"none of {len(problems)} candidates kept: "
                               + " | ".join(problems))

    async def _check(self, text: str, database: str, level: str) -> dict[str, Any] | str:
        """The record's SQL columns, or why this candidate is dropped."""
        cfg = self.config
        sql = clean_sql(text)
        try:
            tree = parse_sql(sql)
            raw, result = await asyncio.to_thread(
                _pool_of(self).query_result, database, sql, timeout_s=cfg.timeout_s,
                max_rows=cfg.max_rows,
                result_rows=cfg.result_rows)
        except SQLRejected as exc:
            return f"SQL rejected: {exc} [{_clip(sql)}]"
        except SQLTimeout as exc:
            return f"SQL timed out: {exc} [{_clip(sql)}]"
        except SQLExecutionError as exc:
            return f"SQL failed: {exc} [{_clip(sql)}]"
        if raw.truncated:
            return f"SQL returned more than {cfg.max_rows} rows (the row cap) [{_clip(sql)}]"
        if not raw.rows:
            return f"SQL returned no rows [{_clip(sql)}]"
        features = sql_features(tree)
        matched = complexity_matches(level, features)
        if cfg.require_complexity and not matched:
            return f"SQL is not {level} (features: {features or 'none'}) [{_clip(sql)}]"
        return {"sql": sql, "sql_features": features, "complexity_matched": matched,
                "result": result}


def _sum_usage(usages: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for usage in usages:
        for key, value in usage.items():
            total[key] = total.get(key, 0) + int(value)
    return total


def _clip(sql: str, n: int = 160) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= n else flat[: n - 3] + "..."


# --- question ------------------------------------------------------------------------------


class QuestionConfig(StepConfig):
    template: str = "text2sql/prompts/question.jinja"
    temperature: float = 0.7
    max_tokens: int = 320
    question_max_chars: int = Field(default=500, ge=20, le=900)
    #: Multi-turn dialogues are longer.
    dialogue_max_chars: int = Field(default=900, ge=20, le=900)


_QUOTES_SQL = re.compile(r"\bselect\b.+\bfrom\b", re.I | re.S)


@register_step
class Text2SQLQuestion(TemplatedStep, MapStep):
    """Back-translation: the question the query answers, in the task's style."""

    type_name = "text2sql_question"
    uses_llm = True
    Config = QuestionConfig
    config: QuestionConfig

    def reads(self) -> list[str]:
        return ["schema", "sql", "result", "style"]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        style = str(record["style"])
        cap = cfg.dialogue_max_chars if style == "multi-turn" else cfg.question_max_chars
        schema = {"type": "object", "properties": {"question": {
            "type": "string", "minLength": 8, "maxLength": cap}},
            "required": ["question"], "additionalProperties": False}
        variables = {**record, "style_description": STYLE_DESCRIPTIONS[style]}
        response = await self.ask(ctx, variables, schema=schema)
        question = str((response.parsed or {}).get("question", "")).strip()
        if len(question.split()) < 3:
            return ItemResult.drop(f"question too short: {question!r}")
        if _QUOTES_SQL.search(question):
            return ItemResult.drop("question quotes SQL instead of asking in words")
        return self.output(response, {"question": question})


# --- chain of thought ----------------------------------------------------------------------


class CotConfig(StepConfig):
    template: str = "text2sql/prompts/cot.jinja"
    temperature: float = 0.5
    max_tokens: int = 384
    reasoning_max_chars: int = Field(default=900, ge=20, le=900)
    #: Drop reasoning that names none of the tables the query reads (not about this query).
    require_table_mention: bool = True


_FENCED = re.compile(r"```.*?(```|$)", re.S)


@register_step
class Text2SQLCot(TemplatedStep, MapStep):
    """Step-by-step reasoning for the question, ending with the verified query (``cot``)."""

    type_name = "text2sql_cot"
    uses_llm = True
    Config = CotConfig
    config: CotConfig

    def reads(self) -> list[str]:
        return ["schema", "question", "sql"]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        schema = {"type": "object", "properties": {"reasoning": {
            "type": "string", "minLength": 20, "maxLength": cfg.reasoning_max_chars}},
            "required": ["reasoning"], "additionalProperties": False}
        response = await self.ask(ctx, record, schema=schema)
        # A query the model wrote into its reasoning is not the verified one: cut it out.
        reasoning = _FENCED.sub("", str((response.parsed or {}).get("reasoning", ""))).strip()
        if len(reasoning.split()) < 4:
            return ItemResult.drop(f"reasoning too short: {reasoning!r}")
        sql = str(record["sql"])
        if cfg.require_table_mention:
            tables = query_tables(sql)
            lowered = reasoning.lower()
            if tables and not any(t.lower() in lowered for t in tables):
                return ItemResult.drop(f"reasoning names none of the query's tables "
                                       f"({', '.join(sorted(tables))})")
        cot = f"{reasoning}\n\n```sql\n{sql}\n```"
        return self.output(response, {"cot": cot})


def query_tables(sql: str) -> set[str]:
    """Names of the database tables the query reads (CTE names excluded)."""
    from sqlglot import exp

    tree = parse_sql(sql)
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    return {t.name for t in tree.find_all(exp.Table) if t.name and t.name.lower() not in ctes}
