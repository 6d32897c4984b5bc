"""OmniSQL's pipeline (Li et al. 2025, arXiv 2503.02240; RUCKBReasoning/OmniSQL,
data_synthesis/) as synthloom steps. This module: the tasks and the databases.

* ``text2sql_tasks`` (source): one task per item: a database (a real SQLite file, a domain or
  a seed table whose database the model will write), a complexity level (OmniSQL's four,
  cycling) and a question style (one of nine, drawn per task from the run seed).
* ``text2sql_schema``: a real database's CREATE statements; or the model's schema proposal
  (structured output), sanitised and materialised as SQLite with generated rows.

``sqlgen.py`` writes, executes and dedups the SQL; ``answers.py`` writes the questions and the
execution-checked chain of thought.
"""

from __future__ import annotations

import asyncio
import json
import random
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
from synthloom.core.steps import MapStep, SourceStep, StepConfig, non_empty_subset
from synthloom.methods.text2sql.sqlexec import COMPLEXITIES, DatabasePool
from synthloom.methods.text2sql.synthdb import (
    PROPOSAL_SCHEMA,
    identifier,
    materialize,
    sanitize_schema,
)
from synthloom.methods.text2sql.webtables import (
    WEB_SCHEMA,
    materialize_web,
    sanitize_web_schema,
    seed_tables,
    table_count,
)
from synthloom.prompting.templated import TemplatedStep

#: OmniSQL's nine question styles (``style2desc`` of generate_question_synthesis_prompts.py,
#: restated: the repository has no licence).
STYLE_DESCRIPTIONS = {
    "formal": "Formal: standard grammar and vocabulary. Example: Find all students older "
              "than 18 years and return their home addresses.",
    "colloquial": "Colloquial: informal vocabulary and expressions. Example: Hey! Could you "
                  "help me find the students who are over 18? I'd love to know their names "
                  "and where they live.",
    "imperative": "Imperative: command or directive sentences. Example: Please gather all the "
                  "students older than 18; I need their names and where they live!",
    "interrogative": "Interrogative: question forms. Example: Which students are older than "
                     "18, and what are their home addresses?",
    "descriptive": "Descriptive: detailed description with context. Example: I want to know "
                   "the names and home addresses of all students older than 18.",
    "concise": "Concise: short sentences. Example: Students older than 18, return their "
               "names and addresses.",
    "vague": "Vague: ambiguous wording that must be inferred. Example: What are the names "
             "and addresses of those older students? (External knowledge: 'older students' "
             "refers to age >= 18.)",
    "metaphorical": "Metaphorical: metaphors or figurative expressions. Example: Find the "
                    "names and addresses of those who have reached adulthood. (External "
                    "knowledge: 'reached adulthood' refers to age >= 18.)",
    "multi-turn": "Multi-turn dialogue: a conversation in which the user clarifies the "
                  "request. Example: User: I want some student information. Assistant: "
                  "Which students? User: Students older than 18. Assistant: What would you "
                  "like to know about them? User: Names and addresses.",
}
STYLES = tuple(STYLE_DESCRIPTIONS)
#: Styles whose question comes with external knowledge (OmniSQL's ``steps_w_ek``).
EK_STYLES = frozenset({"vague", "metaphorical"})

DEFAULT_DOMAINS = [
    "a public library lending books", "a bicycle rental service", "a small hospital clinic",
    "an online music store", "a university course registration system",
    "a restaurant taking orders", "a football league", "a veterinary practice",
]
DB_SUFFIXES = (".sqlite", ".sqlite3", ".db")


# --- tasks ---------------------------------------------------------------------------------


class TasksConfig(StepConfig):
    #: A SQLite file, a folder of them (``*.sqlite``, ``*.sqlite3``, ``*.db``), ``tables``:
    #: the model writes a database from each seed table (OmniSQL), or ``synth``: the model
    #: proposes a schema per domain.
    database: str = "pkg:data/text2sql/bookshop.sqlite"
    #: Seed tables for ``database: tables``: a CSV file or a folder of them (tasks cycle).
    tables: str = "pkg:data/text2sql/web_tables"
    #: Domains for ``database: synth`` (tasks cycle over them).
    domains: list[str] = Field(default_factory=lambda: list(DEFAULT_DOMAINS))
    #: Tasks made (each cycles over the databases/tables/domains and complexities).
    count: int = Field(default=20, ge=0)
    #: SQL complexity levels, cycled over in task order.
    complexities: list[str] = Field(default_factory=lambda: list(COMPLEXITIES))
    #: Question styles; each task draws one from the run seed and its index.
    styles: list[str] = Field(default_factory=lambda: list(STYLES))

    @field_validator("complexities")
    @classmethod
    def _levels(cls, value: list[str]) -> list[str]:
        return non_empty_subset("complexities", value, list(COMPLEXITIES))

    @field_validator("styles")
    @classmethod
    def _styles(cls, value: list[str]) -> list[str]:
        return non_empty_subset("styles", value, list(STYLES))


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
        mode = cfg.database.strip().lower()
        synth = mode == "synth"
        if synth and not cfg.domains:
            raise RecipeError("database: synth needs at least one domain")
        seeds = seed_tables(cfg.tables, ctx.recipe_dir) if mode == "tables" else []
        files = [] if synth or seeds else database_files(cfg.database, ctx.recipe_dir)
        for i in range(cfg.count):
            if seeds:
                name, markdown = seeds[i % len(seeds)]
                yield {"task_index": i, "database": None, "domain": None, "seed_table": name,
                       "seed_markdown": markdown,
                       "complexity": cfg.complexities[i % len(cfg.complexities)],
                       "style": random.Random(f"text2sql-style:{ctx.seed}:{i}").choice(
                           cfg.styles)}
                continue
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
    #: Jinja prompt template of a domain's schema proposal (``database: synth``).
    template: str = "text2sql/prompts/schema.jinja"
    #: OmniSQL's schema synthesis from a seed table, and its enhancement.
    web_template: str = "text2sql/prompts/web_schema.jinja"
    #: Jinja template of the enhancement of a schema made from a seed table.
    enhance_template: str = "text2sql/prompts/web_enhance.jinja"
    #: Token cap of the two web-table calls (a schema of ~10 tables with rows is long).
    web_max_tokens: int = 4096
    #: Rows written per table of a synthesised database.
    rows_per_table: int = Field(default=20, ge=1, le=10_000)
    #: Sampling temperature of the schema calls.
    temperature: float = 0.7
    #: Most tokens of a domain's schema proposal.
    max_tokens: int = 900


@register_step
class Text2SQLSchema(TemplatedStep, MapStep):
    """A real database's schema, or a synthesised one (model proposal → SQLite file)."""

    type_name = "text2sql_schema"
    uses_llm = True
    template_fields = ("template", "web_template", "enhance_template")
    Config = SchemaConfig
    config: SchemaConfig

    def setup(self, ctx: RunContext) -> None:
        super().setup(ctx)
        self._locks: dict[str, asyncio.Lock] = {}
        self._pool: DatabasePool | None = None

    def reads(self) -> list[str]:
        return ["database", "domain", "seed_table", "seed_markdown"]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        if record.get("seed_table"):
            return await self._from_table(record, ctx)
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

    async def _from_table(self, record: dict[str, Any], ctx: ItemContext
                          ) -> Output | ItemResult:
        """OmniSQL's database synthesis: schema from the seed table, enhanced, built with the
        model's own rows. Tasks of one table share its calls (same prompts and seeds)."""
        name, markdown = str(record["seed_table"]), str(record["seed_markdown"])
        lock = self._locks.setdefault(f"table:{name}", asyncio.Lock())
        seed = (ctx.run.seed * 1_000_003 + int(text_hash(name)[:8], 16)) % 2**31
        cap = self.config.web_max_tokens
        async with lock:
            first = await self.ask(ctx, {"seed_markdown": markdown,
                                         "table_count": table_count(ctx.run.seed, name)},
                                   template="web_template", schema=WEB_SCHEMA, seed=seed,
                                   max_tokens=cap)
            initial = sanitize_web_schema(first.parsed)
            if not initial.tables:
                why = "; ".join(initial.notes) or "no tables"
                return ItemResult.drop(f"schema from table {name} unusable: {why}")
            second = await self.ask(ctx, {"domain": initial.domain, "scenario": initial.scenario,
                                          "schema_json": json.dumps(initial.to_json(), indent=1)},
                                    template="enhance_template", schema=WEB_SCHEMA,
                                    seed=seed + 1, max_tokens=cap)
        enhanced = sanitize_web_schema(second.parsed)
        if not enhanced.tables:
            why = "; ".join(enhanced.notes) or "no tables"
            return ItemResult.drop(f"enhanced schema of table {name} unusable: {why}")
        stem = identifier(enhanced.domain or initial.domain) or identifier(name) or "web"
        path, build_notes = await asyncio.to_thread(
            materialize_web, enhanced, ctx.run.run_dir / "text2sql_databases", stem[:40])
        output = self.output(second, {
            "database": str(path.resolve()), "db_id": path.stem,
            "schema": enhanced.schema_text(), "schema_origin": "web_table",
            "schema_domain": enhanced.domain or initial.domain,
            "schema_notes": initial.notes + enhanced.notes + build_notes,
            "model_rows": sum(len(t.rows) for t in enhanced.tables)}, template="enhance_template")
        output.usage = {k: first.usage.to_json().get(k, 0) + v
                        for k, v in second.usage.to_json().items()}
        return output


def _pool_of(step: Any) -> DatabasePool:
    """The step's database pool, made on first use (so a step pickles before it) and closed
    when the step is collected or the interpreter exits."""
    pool = getattr(step, "_pool", None)
    if pool is None:
        pool = step._pool = DatabasePool()
        weakref.finalize(step, pool.close)
    return pool
