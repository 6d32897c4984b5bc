"""core/jsonio.read_jsonl: the one JSONL reader and its one error policy (a bad line is reported
with file and line, the rest is read; ``strict`` raises), and its source-step form."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from synthloom.core.jsonio import BadJsonLine, BadLine, read_jsonl
from synthloom.core.steps import SourceFailure, jsonl_source_rows


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n{"a": 2\n[3]\n{"a": "caf\xe9"}\n{"a": 5}')
    return path


def test_bad_lines_are_reported_with_file_and_line_and_the_rest_is_read(tmp_path: Path) -> None:
    path = _file(tmp_path)
    bad: list[BadLine] = []
    rows = list(read_jsonl(path, bad=bad))
    # The BOM is not part of line 1; a Latin-1 byte is U+FFFD, not a lost row.
    assert rows == [(1, {"a": 1}), (4, [3]), (5, {"a": "caf\ufffd"}), (6, {"a": 5})]
    assert [(b.path, b.line) for b in bad] == [(str(path), 3)]
    assert str(bad[0]).startswith(f"{path}:3: not JSON")


def test_objects_only_reports_other_values(tmp_path: Path) -> None:
    bad: list[BadLine] = []
    rows = list(read_jsonl(_file(tmp_path), bad=bad, objects=True))
    assert [n for n, _ in rows] == [1, 5, 6]
    assert [(b.line, b.message) for b in bad] == [(3, bad[0].message), (4, "not a JSON object (list)")]


def test_without_a_list_bad_lines_are_logged(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="synthloom.core.jsonio"):
        assert len(list(read_jsonl(_file(tmp_path)))) == 4
    assert any("rows.jsonl:3: not JSON" in r.getMessage() for r in caplog.records)


def test_strict_raises_on_the_first_bad_line(tmp_path: Path) -> None:
    path = _file(tmp_path)
    seen = []
    with pytest.raises(BadJsonLine, match=r"rows\.jsonl:3: not JSON") as info:
        for number, _ in read_jsonl(path, strict=True):
            seen.append(number)
    assert seen == [1] and info.value.bad.line == 3


def test_source_rows_put_failures_in_file_order(tmp_path: Path) -> None:
    items = list(jsonl_source_rows(_file(tmp_path)))
    shape = [f"fail:{i.where.rsplit(':', 1)[1]}" if isinstance(i, SourceFailure) else i[0]
             for i in items]
    assert shape == [1, "fail:3", "fail:4", 5, 6]
    assert all(i.error_class == "BadJsonLine" for i in items if isinstance(i, SourceFailure))
