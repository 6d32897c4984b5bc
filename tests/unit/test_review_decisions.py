"""Review decisions (issue 14) outside the web app: ``export --reviewed``, the marks that
``run --regenerate rejected`` makes, and their refusals. The run folder is written by the test
(no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from synthloom.cli import app
from synthloom.core.decisions import (
    Decisions,
    mark_rejected_for_regeneration,
    resample_targets,
    write_reviewed,
)
from synthloom.core.errors import SynthloomError
from synthloom.export.formats import ExportOptions, export


def _record(i: int, parent: str | None = None, step: str = "response") -> dict:
    return {"instruction": f"question {i}?", "response": f"answer {i}",
            "_meta": {"id": f"id{i}", "parents": [parent or f"p{i}"], "step": step,
                      "sample_index": 0}}


def _run(tmp_path: Path, records: list[dict]) -> Path:
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "summary.json").write_text(json.dumps({"recipe": "t", "steps": []}))
    return tmp_path


def test_write_reviewed_applies_edits_and_reads_pending(tmp_path: Path) -> None:
    recs = [_record(i) for i in range(5)]
    run = _run(tmp_path, recs)
    d = Decisions(run)
    d.decide(recs[0], "accepted", "fine")
    d.decide(recs[1], "accepted", "", {"response": "better answer"})
    d.decide(recs[2], "rejected", "bad")
    d.decide(recs[3], "rejected", "")
    d.decide(recs[3], "accepted", "changed my mind")  # the last decision of an id wins
    got = write_reviewed(run, "data.jsonl", "accepted", tmp_path / "out.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert (got.written, got.read, got.edited) == (3, 5, 1)
    assert [r["_meta"]["id"] for r in rows] == ["id0", "id1", "id3"]
    assert rows[1]["response"] == "better answer" and rows[1]["_meta"]["edited"] == ["response"]
    assert "edited" not in rows[0]["_meta"]
    pending = write_reviewed(run, "data.jsonl", "pending", tmp_path / "p.jsonl")
    assert pending.written == 1  # id4: nobody decided


def test_write_reviewed_names_a_bad_line_and_goes_on(tmp_path: Path) -> None:
    recs = [_record(0), _record(1)]
    run = _run(tmp_path, recs)
    with (run / "data.jsonl").open("a") as handle:
        handle.write("{not json\n")
    Decisions(run).decide(recs[1], "accepted")
    got = write_reviewed(run, "data.jsonl", "accepted", tmp_path / "out.jsonl")
    assert got.written == 1 and got.read == 3
    assert got.bad_lines and got.bad_lines[0].startswith("data.jsonl:3: not a JSON record")


def test_export_reviewed_accepted_writes_card_line(tmp_path: Path) -> None:
    recs = [_record(i) for i in range(4)]
    (tmp_path / "run").mkdir()
    run = _run(tmp_path / "run", recs)
    Decisions(run).decide(recs[2], "accepted", "", {"response": "edited"})
    result = export(run, tmp_path / "x", ExportOptions(format="sharegpt", reviewed="accepted"))
    assert result.rows == 1 and result.reviewed and result.reviewed["of"] == 4
    row = json.loads((tmp_path / "x" / "train.jsonl").read_text())
    assert row["conversations"][-1]["value"] == "edited"
    card = (tmp_path / "x" / "README.md").read_text()
    assert "only the 1 of 4 records of `data.jsonl` a reviewer marked **accepted**" in card
    with pytest.raises(SynthloomError, match="none of the 4 records .* is marked rejected"):
        export(run, tmp_path / "y", ExportOptions(format="jsonl", reviewed="rejected"))
    with pytest.raises(SynthloomError, match="--reviewed 'yes'"):
        export(run, tmp_path / "z", ExportOptions(format="jsonl", reviewed="yes"))


def test_regeneration_marks_once_and_says_what_it_skips(tmp_path: Path) -> None:
    # Two siblings of one input (an expand step), one other item, one global-step record.
    recs = [_record(0, "in0"), _record(1, "in0"), _record(2, "in2"),
            _record(3, "in3", step="dedup")]
    run = _run(tmp_path, recs)
    d = Decisions(run)
    for r in recs:
        d.decide(r, "rejected")
    first = mark_rejected_for_regeneration(run, {"response"})
    assert [x.id for x in first.bumped] == ["id0", "id1", "id2"]
    assert [(x.id, "dedup" in why) for x, why in first.skipped] == [("id3", True)]
    assert resample_targets(run) == {("response", "in0"): 1, ("response", "in2"): 1}
    again = mark_rejected_for_regeneration(run, {"response"})  # nothing new: no new bump
    assert not again.bumped and again.earlier == 3
    assert resample_targets(run) == {("response", "in0"): 1, ("response", "in2"): 1}
    # A regenerated record rejected again bumps its item once more.
    new = _record(9, "in2")
    new["_meta"]["sample_index"] = 1
    d.decide(new, "rejected")
    third = mark_rejected_for_regeneration(run, {"response"})
    assert [x.id for x in third.bumped] == ["id9"]
    assert resample_targets(run)[("response", "in2")] == 2


def test_cli_regenerate_without_decisions_is_one_clear_error(tmp_path: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["run", "quickstart", "--out", str(tmp_path), "--limit", "1",
                               "--regenerate", "rejected", "--quiet"])
    assert done.exit_code != 0
    assert "has no review decisions" in done.output and "synthloom review" in done.output
    bad = runner.invoke(app, ["run", "quickstart", "--out", str(tmp_path), "--regenerate",
                              "all", "--quiet"])
    assert bad.exit_code != 0 and "only 'rejected'" in bad.output


def test_cli_review_refuses_a_folder_that_is_no_run(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn", reason="the review extra (uvicorn) is not installed")
    done = CliRunner().invoke(app, ["review", str(tmp_path / "nowhere")])
    assert done.exit_code != 0 and "is it a synthloom run folder" in done.output


def test_cli_review_keeps_the_token_off_loopback(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn", reason="the review extra (uvicorn) is not installed")
    run = _run(tmp_path, [_record(0)])
    done = CliRunner().invoke(app, ["review", str(run), "--host", "0.0.0.0", "--no-token"])
    assert done.exit_code != 0 and "--no-token with --host 0.0.0.0" in done.output
