"""Raw jsonl export: the Arrow-stable writer (``_meta`` and nested columns as JSON strings, a
second pass for columns of mixed kinds; orjson lines) beside the plain one-object-a-line
json.dumps writer it replaced, on a real logic run (all task types, tool-only, no model).

Both export the same run folder to the same format through ``synthloom.export.formats.export``
(reading, row building, card); only the jsonl writer differs. Prints one JSON line: rows/s of
each and the ratio stable/plain (best of ``--repeat``).

    python benchmarks/export_jsonl.py [--count 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from synthloom.api import RunOptions, run_recipe
from synthloom.export import registry
from synthloom.export.formats import ExportOptions, export


def plain_jsonl(rows: Iterable[dict[str, Any]], path: Path) -> None:
    """The writer before issue 23 item 8 (every value as is, json.dumps lines)."""
    with path.open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def timed(run: Path, out: Path, repeat: int) -> tuple[float, int]:
    best, rows = float("inf"), 0
    for i in range(repeat):
        start = time.perf_counter()
        rows = export(run, out / str(i), ExportOptions(format="jsonl")).rows
        best = min(best, time.perf_counter() - start)
    return best, rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=200, help="items per logic task")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "logic"
        asyncio.run(run_recipe("logic", run, RunOptions(overrides={"count": str(args.count)})))
        stable_s, rows = timed(run, Path(tmp) / "stable", args.repeat)
        spec = registry.get_format("jsonl")
        registry._FORMATS["jsonl"] = dataclasses.replace(spec, write=plain_jsonl)
        try:
            plain_s, _ = timed(run, Path(tmp) / "plain", args.repeat)
        finally:
            registry._FORMATS["jsonl"] = spec
    print(json.dumps({"rows": rows, "stable_rows_per_s": round(rows / stable_s),
                      "plain_rows_per_s": round(rows / plain_s),
                      "ratio_stable_vs_plain": round(plain_s / stable_s, 3)}))


if __name__ == "__main__":
    main()
