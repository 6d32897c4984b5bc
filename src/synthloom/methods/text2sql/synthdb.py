"""Model-proposed schemas, made safe and materialised as SQLite databases with generated rows.

OmniSQL synthesises databases with an LLM; here the model only proposes the *schema* (tables,
columns, types, references) as structured output, and the rows come from a deterministic
generator keyed on column names and types (a small faker), so even a weak model's schema
yields a database whose queries return rows. Sanitising is strict and explained: identifiers
become snake_case (SQL keywords get a suffix), duplicates and unknown references are dropped,
each table gets an integer primary key ``id``.
"""

from __future__ import annotations

import os
import random
import re
import sqlite3
import tempfile
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from synthloom.core.fingerprint import text_hash

TYPES = ("INTEGER", "REAL", "TEXT", "DATE", "BOOLEAN")
MAX_TABLES = 5
MAX_COLUMNS = 8

#: SQL keywords that cannot be bare table/column names in SQLite (or confuse models).
_KEYWORD_TEXT = """
abort action add after all alter analyze and as asc attach autoincrement before begin between by
cascade case cast check collate column commit conflict constraint create cross current
current_date current_time current_timestamp database default deferrable deferred delete desc
detach distinct do drop each else end escape except exclude exclusive exists explain fail filter
first following for foreign from full glob group groups having if ignore immediate in index
indexed initially inner insert instead intersect into is isnull join key last left like limit
match natural no not nothing notnull null nulls of offset on or order others outer over partition
plan pragma preceding primary query raise range recursive references regexp reindex release
rename replace restrict right rollback row rows savepoint select set table temp temporary then
ties to transaction trigger unbounded union unique update using vacuum values view virtual when
where window with without
"""
KEYWORDS = frozenset(_KEYWORD_TEXT.split())


def identifier(raw: Any) -> str | None:
    """A safe snake_case identifier, or None when nothing usable is left."""
    text = re.sub(r"[^0-9a-zA-Z]+", "_", str(raw or "").strip()).strip("_").lower()
    text = re.sub(r"_+", "_", text)[:40]
    if not text:
        return None
    if text[0].isdigit():
        text = f"t_{text}"
    if text in KEYWORDS:
        text = f"{text}s" if not text.endswith("s") else f"{text}_value"
    return text


@dataclass
class Column:
    name: str
    type: str
    references: str | None = None


@dataclass
class Table:
    name: str
    columns: list[Column] = field(default_factory=list)


@dataclass
class SynthSchema:
    tables: list[Table]
    notes: list[str]

    def create_statements(self) -> list[str]:
        statements = []
        for table in self.tables:
            lines = ["  id INTEGER PRIMARY KEY"]
            for col in table.columns:
                if col.references:
                    lines.append(f"  {col.name} INTEGER REFERENCES {col.references}(id)")
                else:
                    lines.append(f"  {col.name} {col.type}")
            statements.append(f"CREATE TABLE {table.name} (\n" + ",\n".join(lines) + "\n)")
        return statements

    def schema_text(self) -> str:
        return "\n\n".join(s + ";" for s in self.create_statements())


def sanitize_schema(proposal: Any) -> SynthSchema:
    """The usable part of the model's proposal ``{"tables": [{"name", "columns": [{"name",
    "type", "references"}]}]}``; ``notes`` say what was changed or left out, and why."""
    notes: list[str] = []
    raw_tables = proposal.get("tables") if isinstance(proposal, dict) else None
    if not isinstance(raw_tables, list):
        return SynthSchema([], ["no tables list"])
    tables: list[Table] = []
    raw_refs: list[list[str | None]] = []
    for raw in raw_tables:
        if len(tables) == MAX_TABLES:
            notes.append(f"kept only the first {MAX_TABLES} tables")
            break
        name = identifier(raw.get("name")) if isinstance(raw, dict) else None
        if name is None or name in {t.name for t in tables}:
            notes.append(f"table {raw.get('name') if isinstance(raw, dict) else raw!r}: "
                         "no usable or a repeated name")
            continue
        table, refs = Table(name), []
        for rc in raw.get("columns") or []:
            if not isinstance(rc, dict):
                continue
            col = identifier(rc.get("name"))
            ref = identifier(rc.get("references")) if rc.get("references") else None
            if col == "id" and ref and ref != name:
                col = f"{ref}_id"  # "id references customers": the model meant a link
            if col is None or col == "id" or col in {c.name for c in table.columns}:
                continue  # the primary key ``id`` is added by us
            if len(table.columns) == MAX_COLUMNS:
                notes.append(f"table {name}: kept only {MAX_COLUMNS} columns")
                break
            kind = str(rc.get("type") or "TEXT").upper()
            table.columns.append(Column(col, kind if kind in TYPES else "TEXT"))
            refs.append(ref)
        if not table.columns:
            notes.append(f"table {name}: no usable columns")
            continue
        tables.append(table)
        raw_refs.append(refs)
    return _order_by_references(tables, raw_refs, notes)


def _order_by_references(tables: list[Table], raw_refs: list[list[str | None]],
                         notes: list[str]) -> SynthSchema:
    """Tables ordered so that a referenced table comes first (rows are generated parents
    first); references to unknown tables, to the table itself or closing a cycle are dropped."""
    names = {t.name for t in tables}
    raw_refs = [[_resolve(r, names) for r in refs] for refs in raw_refs]
    wanted = {t.name: {r for r in refs if r and r in names and r != t.name}
              for t, refs in zip(tables, raw_refs, strict=True)}
    ordered: list[Table] = []
    placed: set[str] = set()
    remaining = list(tables)
    while remaining:
        ready = next((t for t in remaining if wanted[t.name] <= placed), remaining[0])
        ordered.append(ready)
        placed.add(ready.name)
        remaining.remove(ready)
    for table, refs in zip(tables, raw_refs, strict=True):
        for col, ref in zip(table.columns, refs, strict=True):
            if ref is None:
                continue
            position = [t.name for t in ordered]
            if ref in names and ref != table.name and \
                    position.index(ref) < position.index(table.name):
                col.references, col.type = ref, "INTEGER"
            else:
                why = "unknown table" if ref not in names else \
                    "the table itself" if ref == table.name else "a reference cycle"
                notes.append(f"{table.name}.{col.name}: reference to {ref!r} dropped ({why})")
    return SynthSchema(ordered, notes)


def _resolve(ref: str | None, names: set[str]) -> str | None:
    """A reference as a table name: ``customer_id`` or ``customer`` → ``customers``."""
    if ref is None or ref in names:
        return ref
    stem = ref[:-3] if ref.endswith("_id") else ref
    for candidate in (stem, f"{stem}s", f"{stem}es", stem.rstrip("s")):
        if candidate in names:
            return candidate
    return ref


# --- rows ----------------------------------------------------------------------------------

FIRST = ["Anna", "Ben", "Chloe", "David", "Elena", "Farid", "Greta", "Hugo", "Iris", "Jonas",
         "Keiko", "Liam", "Maya", "Noah", "Olivia", "Pablo", "Rosa", "Sven", "Tara", "Omar"]
LAST = ["Adams", "Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hansen", "Ito",
        "Jensen", "Kim", "Lopez", "Moreau", "Novak", "Ortiz", "Rossi", "Silva", "Walsh"]
CITIES = ["Oslo", "Lyon", "Austin", "Osaka", "Turin", "Leeds", "Nairobi", "Puebla", "Porto",
          "Krakow", "Busan", "Adelaide"]
COUNTRIES = ["Norway", "France", "United States", "Japan", "Italy", "United Kingdom", "Kenya",
             "Mexico", "Portugal", "Poland", "South Korea", "Australia"]
WORDS = ["alpha", "harbor", "meadow", "summit", "copper", "river", "cedar", "lantern", "orbit",
         "maple", "granite", "willow", "ember", "delta", "prism", "falcon"]
CATEGORIES = ["standard", "premium", "basic", "special", "seasonal", "classic"]
STATUSES = ["active", "pending", "closed", "cancelled", "completed"]


def _text_value(col: str, rng: random.Random, i: int) -> str:
    if "email" in col:
        return f"{rng.choice(FIRST).lower()}.{rng.choice(LAST).lower()}{i}@example.com"
    if "first" in col:
        return rng.choice(FIRST)
    if "last" in col or "surname" in col:
        return rng.choice(LAST)
    if col == "name" or col.endswith("_name") or col in ("author", "owner", "customer"):
        return f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    if "city" in col or "town" in col:
        return rng.choice(CITIES)
    if "country" in col or "nation" in col:
        return rng.choice(COUNTRIES)
    if "status" in col or "state" in col:
        return rng.choice(STATUSES)
    if any(k in col for k in ("category", "type", "kind", "genre", "level", "tier", "class")):
        return rng.choice(CATEGORIES)
    if "phone" in col:
        return f"+1-555-{rng.randint(1000, 9999)}"
    if any(k in col for k in ("title", "description", "note", "comment", "label")):
        return f"{rng.choice(WORDS).title()} {rng.choice(WORDS)}"
    if "code" in col or "sku" in col:
        return f"{col[:2].upper()}-{rng.randint(100, 999)}"
    return f"{rng.choice(WORDS)} {i}"


def _integer_value(col: str, rng: random.Random) -> int:
    if "year" in col:
        return rng.randint(1990, 2024)
    if "age" in col:
        return rng.randint(18, 80)
    if any(k in col for k in ("quantity", "qty", "count", "stock", "number", "num")):
        return rng.randint(0, 100)
    if any(k in col for k in ("rating", "score", "rank", "level")):
        return rng.randint(1, 5)
    return rng.randint(1, 1000)


def _real_value(col: str, rng: random.Random) -> float:
    if any(k in col for k in ("rating", "score")):
        return round(rng.uniform(1, 5), 1)
    if any(k in col for k in ("percent", "rate", "ratio")):
        return round(rng.uniform(0, 1), 3)
    return round(rng.uniform(1, 500), 2)


def generate_rows(schema: SynthSchema, rows_per_table: int, seed: int) -> dict[str, list[tuple]]:
    """Deterministic rows for every table (same schema and seed, same rows)."""
    data: dict[str, list[tuple]] = {}
    start = date(2015, 1, 1)
    for table in schema.tables:
        rng = random.Random(f"text2sql-rows:{seed}:{table.name}")
        rows = []
        for i in range(1, rows_per_table + 1):
            row: list[Any] = [i]
            for col in table.columns:
                if col.references:
                    row.append(rng.randint(1, len(data[col.references])))
                elif col.type == "INTEGER":
                    row.append(_integer_value(col.name, rng))
                elif col.type == "REAL":
                    row.append(_real_value(col.name, rng))
                elif col.type == "DATE":
                    row.append((start + timedelta(days=rng.randint(0, 3650))).isoformat())
                elif col.type == "BOOLEAN":
                    row.append(rng.randint(0, 1))
                else:
                    row.append(_text_value(col.name, rng, i))
            rows.append(tuple(row))
        data[table.name] = rows
    return data


def materialize(schema: SynthSchema, folder: Path, stem: str, *, rows_per_table: int = 20,
                seed: int = 0) -> Path:
    """Create (once) ``folder/stem-HASH.sqlite`` holding the schema and its generated rows.

    The name carries a hash of the schema, row count and seed, so an existing file with that
    name already has exactly this content and is reused (a rerun, or tasks sharing a domain).
    """
    statements = schema.create_statements()
    digest = text_hash("\n".join([*statements, str(rows_per_table), str(seed)]), 12)
    path = folder / f"{stem}-{digest}.sqlite"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp)
        for statement in statements:
            conn.execute(statement)
        for table, rows in generate_rows(schema, rows_per_table, seed).items():
            marks = ", ".join("?" * len(rows[0]))
            conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        conn.commit()
        conn.close()
        os.replace(tmp, path)  # atomic: a reader never sees a half-written database
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


#: The JSON schema the model fills in (llama.cpp grammar: short strings, small arrays).
PROPOSAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tables": {
            "type": "array", "minItems": 2, "maxItems": 4,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 40},
                    "columns": {
                        "type": "array", "minItems": 2, "maxItems": 6,
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string", "minLength": 1, "maxLength": 40},
                                "type": {"type": "string", "enum": list(TYPES)},
                                "references": {"type": "string", "maxLength": 40},
                            },
                            "required": ["name", "type", "references"],
                            "additionalProperties": False,
                        },
                    },
                },
                "required": ["name", "columns"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["tables"],
    "additionalProperties": False,
}
