"""OmniSQL's web-table-driven database synthesis (``data_synthesis/database_synthesis/``).

A seed table (a CSV: the bundled web-like samples, or the user's) is shown to the model as a
Markdown table; the model names its domain and a business scenario and writes a schema of
several tables, each with column types, descriptions, a primary key and two sample rows, and
the foreign keys (``schema_prompt.txt``, table count drawn from normal(10, 4) clipped to
1-20); a second call enriches that schema with more columns (``enhance_prompt.txt``); the
result is built as SQLite with the model's own sample rows as the data and the column
descriptions as comments (``build_sqlite_databases.py``, ``sqlite_schema_parser.py``).
"""

from __future__ import annotations

import csv
import os
import random
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthloom.core.errors import RecipeError
from synthloom.core.fingerprint import text_hash
from synthloom.core.recipe import resolve_data_path
from synthloom.methods.text2sql.synthdb import identifier

#: Markdown rows shown per seed table (the authors' demonstrations show five).
SEED_ROWS = 5


def seed_tables(spec: str, base: Path | None) -> list[tuple[str, str]]:
    """``(name, markdown)`` of each CSV named by ``spec`` (a file or a folder), name order."""
    path = resolve_data_path(spec, base)
    files = [path] if path.is_file() else sorted(path.glob("*.csv")) if path.is_dir() else []
    if not files:
        raise RecipeError(f"tables: no CSV file at {spec}")
    return [(f.stem, csv_markdown(f)) for f in files]


def csv_markdown(path: Path, rows: int = SEED_ROWS) -> str:
    """The CSV's header and first ``rows`` rows as a Markdown table with a row index."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        body = [r for _, r in zip(range(rows), reader, strict=False)]
    if not header:
        raise RecipeError(f"tables: {path} has no header row")
    lines = ["|    | " + " | ".join(header) + " |",
             "|---:|" + "|".join(":---" for _ in header) + "|"]
    lines += [f"| {i} | " + " | ".join(r) + " |" for i, r in enumerate(body)]
    return "\n".join(lines)


def table_count(seed: int, name: str) -> int:
    """The authors' ``generate_a_normal_integer``: normal(10, 4) clipped to 1-20."""
    value = random.Random(f"text2sql-table-count:{seed}:{name}").gauss(10, 4)
    return int(min(20, max(1, value)))


_VALUE = {"type": ["string", "number", "null"]}
#: The JSON the model fills in, both for the initial schema and its enhancement.
WEB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "domain": {"type": "string", "minLength": 3, "maxLength": 120},
        "scenario": {"type": "string", "minLength": 10, "maxLength": 1500},
        "tables": {"type": "array", "minItems": 1, "maxItems": 20, "items": {
            "type": "object",
            "properties": {
                "table_name": {"type": "string", "minLength": 1, "maxLength": 40},
                "table_description": {"type": "string", "maxLength": 200},
                "column_names": {"type": "array", "minItems": 1, "maxItems": 50,
                                 "items": {"type": "string", "minLength": 1, "maxLength": 40}},
                "column_types": {"type": "array", "maxItems": 50, "items": {"type": "string"}},
                "column_descriptions": {"type": "array", "maxItems": 50,
                                        "items": {"type": "string", "maxLength": 200}},
                "primary_key": {"type": "array", "maxItems": 3, "items": {"type": "string"}},
                "sample_rows": {"type": "array", "maxItems": 5,
                                "items": {"type": "array", "items": _VALUE}},
            },
            "required": ["table_name", "table_description", "column_names", "column_types",
                         "column_descriptions", "primary_key", "sample_rows"],
            "additionalProperties": False}},
        "foreign_keys": {"type": "array", "maxItems": 40, "items": {
            "type": "object",
            "properties": {k: {"type": "string", "maxLength": 40} for k in (
                "source_table", "column_in_source_table", "referenced_table",
                "column_in_referenced_table")},
            "required": ["source_table", "column_in_source_table", "referenced_table",
                         "column_in_referenced_table"],
            "additionalProperties": False}},
    },
    "required": ["domain", "scenario", "tables", "foreign_keys"],
    "additionalProperties": False,
}

#: The authors' ``convert_complex_type`` mapping (Array/Struct and unknown types → TEXT).
_TYPES = {"INTEGER": "INTEGER", "INT": "INTEGER", "BIGINT": "INTEGER", "VARCHAR": "TEXT",
          "TEXT": "TEXT", "REAL": "REAL", "FLOAT": "REAL", "DOUBLE": "REAL",
          "DECIMAL": "REAL", "NUMERIC": "REAL", "DATE": "TEXT", "TIME": "TEXT",
          "DATETIME": "TEXT", "TIMESTAMP": "TEXT", "BOOLEAN": "INTEGER"}


def sqlite_type(raw: Any) -> str:
    word = str(raw or "").strip().upper().split("(")[0].strip()
    return _TYPES.get(word, "TEXT")


@dataclass
class WebTable:
    name: str
    description: str
    columns: list[tuple[str, str, str]]  # name, SQLite type, description
    primary_key: list[str]
    rows: list[list[Any]] = field(default_factory=list)


@dataclass
class WebSchema:
    domain: str
    scenario: str
    tables: list[WebTable]
    foreign_keys: list[tuple[str, str, str, str]]
    notes: list[str]

    def to_json(self) -> dict[str, Any]:
        """The schema as the model wrote it (cleaned): the enhancement prompt's input."""
        return {"tables": [{
            "table_name": t.name, "table_description": t.description,
            "column_names": [c[0] for c in t.columns], "column_types": [c[1] for c in t.columns],
            "column_descriptions": [c[2] for c in t.columns], "primary_key": t.primary_key,
            "sample_rows": t.rows} for t in self.tables],
            "foreign_keys": [{"source_table": s, "column_in_source_table": sc,
                              "referenced_table": r, "column_in_referenced_table": rc}
                             for s, sc, r, rc in self.foreign_keys]}

    def create_statements(self) -> list[str]:
        out = []
        for t in self.tables:
            lines = [f'  "{name}" {kind} /* {desc.replace("*/", "")} */'
                     for name, kind, desc in t.columns]
            if t.primary_key:
                lines.append("  PRIMARY KEY (" + ", ".join(f'"{k}"' for k in t.primary_key)
                             + ")")
            for s, sc, r, rc in self.foreign_keys:
                if s == t.name:
                    lines.append(f'  FOREIGN KEY ("{sc}") REFERENCES "{r}" ("{rc}")')
            out.append(f'CREATE TABLE "{t.name}" (\n' + ",\n".join(lines) + "\n)")
        return out

    def schema_text(self) -> str:
        return "\n\n".join(s + ";" for s in self.create_statements())


def sanitize_web_schema(raw: Any) -> WebSchema:
    """The usable part of the model's schema; ``notes`` say what was dropped and why (the
    authors keep a table only when names, types and descriptions line up, and a foreign key
    only when both tables exist)."""
    raw = raw if isinstance(raw, dict) else {}
    notes: list[str] = []
    tables: list[WebTable] = []
    for rt in raw.get("tables") or []:
        if not isinstance(rt, dict):
            continue
        name = identifier(rt.get("table_name"))
        names = [identifier(c) for c in rt.get("column_names") or []]
        types = list(rt.get("column_types") or [])
        descs = [str(d) for d in rt.get("column_descriptions") or []]
        if name is None or name in {t.name for t in tables}:
            notes.append(f"table {rt.get('table_name')!r}: no usable or a repeated name")
            continue
        if not names or None in names or len(set(names)) != len(names):
            notes.append(f"table {name}: missing or repeated column names")
            continue
        if not len(names) == len(types) == len(descs):
            # The authors drop such a table; a weak model's schema would lose most tables,
            # so missing types become TEXT and missing descriptions empty, noted.
            notes.append(f"table {name}: {len(names)} columns, {len(types)} types, "
                         f"{len(descs)} descriptions (missing ones: TEXT / empty)")
            types = (types + ["TEXT"] * len(names))[: len(names)]
            descs = (descs + [""] * len(names))[: len(names)]
        columns = [(n, sqlite_type(k), d) for n, k, d in zip(names, types, descs, strict=True)]
        pk = [k for k in (identifier(p) for p in rt.get("primary_key") or []) if k in names]
        table = WebTable(name, str(rt.get("table_description") or ""), columns, pk)
        for row in rt.get("sample_rows") or []:
            if isinstance(row, list) and len(row) == len(columns):
                table.rows.append([_value(v, k) for v, (_, k, _) in zip(row, columns,
                                                                          strict=True)])
            else:
                notes.append(f"table {name}: a sample row of the wrong width dropped")
        tables.append(table)
    known = {t.name: {c[0] for c in t.columns} for t in tables}
    fks = []
    for fk in raw.get("foreign_keys") or []:
        if not isinstance(fk, dict):
            continue
        s, sc, r, rc = (identifier(fk.get(k)) for k in (
            "source_table", "column_in_source_table", "referenced_table",
            "column_in_referenced_table"))
        if s in known and r in known and sc in known[s] and rc in known[r]:
            fks.append((s, sc, r, rc))
        else:
            notes.append(f"foreign key {s}.{sc} -> {r}.{rc} dropped (unknown table or column)")
    return WebSchema(str(raw.get("domain") or "").strip(), str(raw.get("scenario") or "").strip(),
                     tables, fks, notes)


def _value(value: Any, kind: str) -> Any:
    if value is None or kind == "TEXT":
        return value if value is None or isinstance(value, str) else str(value)
    try:
        return int(value) if kind == "INTEGER" else float(value)
    except (TypeError, ValueError):
        return value  # SQLite keeps it as text; the model wrote it so


def materialize_web(schema: WebSchema, folder: Path, stem: str) -> tuple[Path, list[str]]:
    """Build (once) ``folder/stem-HASH.sqlite`` with the schema and the model's rows; a
    statement SQLite refuses is skipped and noted (the authors skip it too)."""
    statements = schema.create_statements()
    payload = repr((statements, [t.rows for t in schema.tables]))
    path = folder / f"{stem}-{text_hash(payload, 12)}.sqlite"
    notes: list[str] = []
    if path.is_file():
        return path, notes
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp)
        for statement, table in zip(statements, schema.tables, strict=True):
            try:
                conn.execute(statement)
            except sqlite3.Error as exc:
                notes.append(f"table {table.name}: CREATE failed ({exc})")
                continue
            marks = ", ".join("?" * len(table.columns))
            for row in table.rows:
                try:
                    conn.execute(f'INSERT INTO "{table.name}" VALUES ({marks})', row)
                except sqlite3.Error as exc:
                    notes.append(f"table {table.name}: a row was refused ({exc})")
        conn.commit()
        conn.close()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path, notes
