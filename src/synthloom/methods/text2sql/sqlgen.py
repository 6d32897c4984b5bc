"""OmniSQL's SQL synthesis (``data_synthesis/sql_synthesis/``) as two steps.

* ``text2sql_sql``: the prompt of ``generate_sql_synthesis_prompts.py`` (schema, 0-2 sampled
  SQLite functions, up to 4 sampled ``INSERT`` statements, the level's criteria with an example
  query, a result column count from geometric(0.6)); the answer's last ```sql block is the
  query; it must parse as one read-only query, run on a private copy (``verify/sql.py``: time
  limit, row cap) and, by default, return rows. Its ``EXPLAIN QUERY PLAN`` is kept, normalised.
* ``text2sql_dedup``: one query per database and normalised query plan (``by: plan``, the
  paper's dedup), or per value-free template (``by: template``, what the authors' released
  ``post_process_sqls.py`` runs); every duplicate is dropped naming the record it repeats.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Literal

from pydantic import Field

from synthloom.core.context import ItemContext, RunContext
from synthloom.core.records import META, ItemResult, Output, rid
from synthloom.core.registry import register_step
from synthloom.core.steps import GlobalStep, MapStep, StepConfig
from synthloom.methods.text2sql.omnisql import (
    CRITERIA,
    LEVEL_NAMES,
    dedup_key,
    last_sql_block,
    normalize_plan,
    sample_prompt_parts,
    table_aliases,
)
from synthloom.methods.text2sql.sqlexec import (
    DatabasePool,
    complexity_matches,
    parse_sql,
    sql_features,
)
from synthloom.methods.text2sql.steps import _pool_of
from synthloom.prompting.templated import TemplatedStep
from synthloom.verify.sql import SQLExecutionError, SQLiteDatabase, SQLRejected, SQLTimeout


class SqlConfig(StepConfig):
    #: Jinja prompt template of the SQL synthesis (OmniSQL's, for the task's complexity).
    template: str = "text2sql/prompts/sql.jinja"
    #: The authors' sampling temperature for SQL synthesis.
    temperature: float = 0.8
    #: The prompt ends "Let's proceed step by step": room for reasoning before the query.
    max_tokens: int = 1024
    #: Time limit of one query's execution, in seconds.
    timeout_s: float = 2.0
    #: Row cap of the execution; a query returning more rows is dropped (too broad to check).
    max_rows: int = Field(default=1000, ge=1)
    #: Rows kept in the record's ``result`` (the first, in the result's defined order).
    result_rows: int = Field(default=10, ge=1)
    #: Rows per table turned into ``INSERT`` statements (the authors' ``LIMIT 2``), of which
    #: 4 are sampled per prompt (the authors' number; ``max_inserts`` can show fewer).
    insert_rows: int = Field(default=2, ge=0, le=10)
    #: INSERT statements shown per prompt, at most (the authors: 4).
    max_inserts: int = Field(default=4, ge=0, le=4)
    #: Drop queries that return no rows (the authors keep them; an empty result cannot tell
    #: a right query from a wrong one in the CoT vote).
    require_rows: bool = True
    #: Drop queries that lack the requested level's features (a rough check of the criteria).
    require_complexity: bool = False
    #: Queries sampled per task; the first that runs (and returns rows) is kept.
    candidates: int = Field(default=1, ge=1, le=16)


def insert_statements(db: SQLiteDatabase, per_table: int) -> list[str]:
    """``INSERT INTO t (cols) VALUES (...)`` for the first ``per_table`` rows of each table
    (the authors' ``obtain_insert_statements``)."""
    names = re.findall(r"CREATE TABLE\s+[\"`\[]?([^\s\"`\]\(]+)", db.schema(), re.I)
    out = []
    for name in names:
        try:
            result = db.execute(f'SELECT * FROM "{name}" LIMIT {per_table}')
        except (SQLRejected, SQLExecutionError, SQLTimeout):
            continue
        for row in result.rows:
            values = ", ".join(_literal(v) for v in row)
            out.append(f"INSERT INTO {name} ({', '.join(result.columns)}) VALUES ({values});")
    return out


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return "'" + text.replace("'", "''") + "'"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"X'{bytes(value)[:16].hex()}'"
    return str(value)


_SEP = "\x1e"  # record separator: the memo stores one string


@register_step
class Text2SQLQuery(TemplatedStep, MapStep):
    """OmniSQL's SQL synthesis prompt; the query is kept only if it parses, runs (and returns
    rows); its normalised query plan is recorded for ``text2sql_dedup``."""

    type_name = "text2sql_sql"
    uses_llm = True
    Config = SqlConfig
    config: SqlConfig

    def setup(self, ctx: RunContext) -> None:
        super().setup(ctx)
        self._pool: DatabasePool | None = None

    def reads(self) -> list[str]:
        # task_index: the prompt's draws (functions, inserts, column count) depend on it.
        return ["task_index", "database", "schema", "complexity"]

    async def process(self, record: dict[str, Any], ctx: ItemContext) -> Output | ItemResult:
        cfg = self.config
        database, level = str(record["database"]), str(record["complexity"])
        pool = _pool_of(self)
        joined = await asyncio.to_thread(
            pool.memo, (database, -100 - cfg.insert_rows),
            lambda: _SEP.join(insert_statements(pool.get(database), cfg.insert_rows)))
        inserts = [s for s in joined.split(_SEP) if s]
        parts = sample_prompt_parts(ctx.run.seed, int(record.get("task_index") or 0), inserts)
        parts["inserts"] = parts["inserts"][: cfg.max_inserts]  # the authors' 4, or fewer
        variables = {"schema": record["schema"], "level": LEVEL_NAMES[level],
                     "criterion": CRITERIA[level], **parts}
        responses = await self.ask_n(ctx, variables, cfg.candidates)
        problems = []
        for response in responses:
            verdict = await self._check(response.text, database, level)
            if isinstance(verdict, str):
                problems.append(verdict)
                continue
            verdict["sql_prompt"] = {"functions": [f.split(":")[0] for f in parts["functions"]],
                                     "column_count": parts["column_count"],
                                     "inserts": len(parts["inserts"])}
            output = self.output(response, verdict)
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
        sql = last_sql_block(text)
        if sql is None:
            return "no ```sql block in the answer"
        pool = _pool_of(self)
        try:
            tree = parse_sql(sql)
            raw, result = await asyncio.to_thread(
                pool.query_result, database, sql, timeout_s=cfg.timeout_s,
                max_rows=cfg.max_rows, result_rows=cfg.result_rows)
            plan = await asyncio.to_thread(pool.query_plan, database, sql,
                                           timeout_s=cfg.timeout_s)
        except SQLRejected as exc:
            return f"SQL rejected: {exc} [{clip(sql)}]"
        except SQLTimeout as exc:
            return f"SQL timed out: {exc} [{clip(sql)}]"
        except SQLExecutionError as exc:
            return f"SQL failed: {exc} [{clip(sql)}]"
        if raw.truncated:
            return f"SQL returned more than {cfg.max_rows} rows (the row cap) [{clip(sql)}]"
        if cfg.require_rows and not raw.rows:
            return f"SQL returned no rows [{clip(sql)}]"
        features = sql_features(tree)
        matched = complexity_matches(level, features)
        if cfg.require_complexity and not matched:
            return f"SQL is not {level} (features: {features or 'none'}) [{clip(sql)}]"
        return {"sql": sql, "sql_features": features, "complexity_matched": matched,
                "result": result, "query_plan": normalize_plan(plan, table_aliases(tree))}


def _sum_usage(usages: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for usage in usages:
        for key, value in usage.items():
            total[key] = total.get(key, 0) + int(value)
    return total


def clip(sql: str, n: int = 160) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= n else flat[: n - 3] + "..."


# --- dedup ---------------------------------------------------------------------------------


class DedupConfig(StepConfig):
    #: ``plan``: one query per database and normalised EXPLAIN QUERY PLAN (the paper);
    #: ``template``: per value-free SQL text (the authors' released script); ``none``.
    by: Literal["plan", "template", "none"] = "plan"


@register_step
class Text2SQLDedup(GlobalStep):
    """Drops a query whose database and dedup key (plan or template) an earlier one has."""

    type_name = "text2sql_dedup"
    Config = DedupConfig
    config: DedupConfig

    def reads(self) -> list[str]:
        return ["database", "query_plan", "sql", META]

    async def process_all(self, records: list[dict[str, Any]], ctx: RunContext,
                          ) -> list[ItemResult]:
        by = self.config.by
        first: dict[str, str] = {}
        results = []
        for record in records:
            key = dedup_key(by, str(record.get("database")), str(record.get("query_plan")),
                            str(record.get("sql")))
            if key in first and by != "none":
                what = "query plan" if by == "plan" else "SQL template"
                results.append(ItemResult.drop(
                    f"same {what} as {first[key]} on this database (key {key[:12]})"))
                continue
            first[key] = rid(record)
            results.append(ItemResult(outputs=[Output(columns={"dedup_key": key})]))
        return results
