"""`synthloom run arithmetic` from the real command line, re-checked independently."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_cli_run_thousand_items(tmp_path: Path) -> None:
    out = tmp_path / "A"
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "synthloom", "run", "arithmetic", "--out", str(out),
         "--set", "count=1000", "--quiet"],
        capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - began
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (out / "data.jsonl").read_text().splitlines()]
    assert len(rows) == 1000
    for row in rows:
        value = eval(row["expression"], {"__builtins__": {}, "Fraction": Fraction})  # noqa: S307
        assert Fraction(value) == Fraction(row["answer"]) and row["verified"] is True
    summary = json.loads((out / "summary.json").read_text())
    assert summary["records"] == 1000 and summary["llm_calls"] == 0
    assert seconds < 60  # "fast": a few seconds here; generous for a loaded CI machine
