"""tests/support/runs.py's accounting check is core's rule (``StepStats.closes``), read from a
summary's JSON: merging global steps close on ``kept``, expand steps on ``expanded``, sources
have no inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthloom.core.accounting import StepStats
from tests.support.runs import assert_closed, read_jsonl, step_closes


@pytest.mark.parametrize("stats", [
    StepStats("m", "map", in_=5, out=3, failed=1, dropped=1),
    StepStats("e", "expand", in_=4, out=9, expanded=3, dropped=1),
    StepStats("g", "global", in_=6, out=2, kept=5, dropped=1),  # merged 5 kept into 2
    StepStats("s", "source", out=7),
    StepStats("m", "map", in_=5, out=3),
    StepStats("g", "global", in_=6, out=6, kept=4),
])
def test_step_closes_is_core_rule(stats: StepStats) -> None:
    assert step_closes(stats.to_json()) is stats.closes()


def test_assert_closed_names_the_open_step() -> None:
    good = StepStats("g", "global", in_=6, out=2, kept=6).to_json()
    assert_closed({"steps": [StepStats("s", "source", out=6).to_json(), good]})
    with pytest.raises(AssertionError, match="'name': 'm'"):
        assert_closed({"steps": [good, StepStats("m", "map", in_=2, out=1).to_json()]})


def test_read_jsonl_reads_rows_and_a_missing_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    assert read_jsonl(tmp_path / "nope.jsonl") == []
