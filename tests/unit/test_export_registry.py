"""The export-format registry: one registration per format feeds the CLI's --format help, the
docs table, the card, the ``read by:`` line and the LLaMA-Factory entry; a format from a new
module is one decorator; ``--for TARGET`` refuses what that trainer would misread and chooses
what it reads. Run folders come from a JSONL source (no LLM) or the quickstart recipe on the
ScriptedTestBackend (tests/unit/test_export_formats.py's fixture)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from synthloom.cli import app
from synthloom.core.errors import SynthloomError
from synthloom.export import registry
from synthloom.export.formats import ExportOptions, export
from synthloom.export.registry import Skip, register_format
from tests.unit.test_export_formats import rows_of, run_dir, run_rows  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def test_every_module_that_registers_formats_is_loaded() -> None:
    package = ROOT / "src" / "synthloom" / "export"
    registering = {f"synthloom.export.{p.stem}" for p in package.glob("*.py")
                   if p.stem != "registry" and "register_format(" in p.read_text()}
    assert registering and registering <= set(registry.FORMAT_MODULES)
    names = registry.format_names()
    assert {"jsonl", "parquet", "hf", "alpaca", "sharegpt", "messages", "prompt-completion",
            "dpo", "dpo-chat"} <= set(names)


def test_cli_help_and_docs_come_from_the_registry() -> None:
    # Typer wraps help text: compare without whitespace.
    shown = re.sub(r"[\s│]+", "", CliRunner().invoke(app, ["export", "--help"]).output)
    for name in registry.format_names():
        assert name in shown
    docs = (ROOT / "docs" / "export.md").read_text()
    table = docs.split("<!-- formats:start -->\n", 1)[1].split("\n<!-- formats:end -->", 1)[0]
    assert table == registry.markdown_table(), \
        "docs/export.md's format table is stale: paste registry.markdown_table()"


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Formats registered by a test vanish after it."""
    monkeypatch.setattr(registry, "_FORMATS", dict(registry.formats()))


def test_a_new_format_is_one_decorator(scratch_registry: None, tmp_path: Path) -> None:
    def qa_columns(fmt: str, sample: list[dict[str, Any]], given: Any) -> dict[str, Any]:
        return {"q": given.instruction or "question"}

    @register_format("qa-upper", columns=qa_columns, targets=("trl",), help="`Q`, `A`",
                     readers="a test trainer", caution="only for this test",
                     llamafactory=lambda file, cols, system: {"file_name": file})
    def qa_upper(record: dict[str, Any], cols: dict[str, Any], mode: str,
                 meta: bool) -> dict[str, Any]:
        if not record.get(cols["q"]):
            raise Skip("no question")
        return {"Q": record[cols["q"]].upper(), "A": record["answer"]}

    run = run_rows(tmp_path, "qa", [{"question": "2+2?", "answer": "4"},
                                    {"question": "", "answer": "5"}])
    done = export(run, tmp_path / "out", ExportOptions(format="qa-upper"))
    assert rows_of(done.data_path) == [{"Q": "2+2?", "A": "4"}]
    assert done.skipped == {"no question": 1}
    assert done.warnings == ["only for this test"]
    info = json.loads((tmp_path / "out" / "dataset_info.json").read_text())
    assert info == {"qa": {"file_name": "train.jsonl"}}
    card = (tmp_path / "out" / "README.md").read_text()
    assert "fields: `Q`, `A`." in card and "Read by: a test trainer." in card
    assert "qa-upper" in registry.cli_help()
    assert "qa-upper" not in registry.markdown_table()  # the docs list the shipped formats
    with pytest.raises(SynthloomError, match="registered twice"):
        register_format("qa-upper", help="", readers="")(lambda r, c, m, x: r)
    with pytest.raises(SynthloomError, match="unknown target 'axolotl'"):
        register_format("qa-x", help="", readers="", targets=("axolotl",))(qa_upper)


def test_for_trl_refuses_sharegpt_and_chooses_what_trl_reads(run_dir: Path,  # noqa: F811
                                                              tmp_path: Path) -> None:
    with pytest.raises(SynthloomError, match=r"--format sharegpt is not read as meant by TRL.*"
                                             r"TRL maps no human/gpt roles.*--for trl takes: "
                                             r"dpo-chat, messages, prompt-completion"):
        export(run_dir, tmp_path / "s", ExportOptions(format="sharegpt", target="trl"))
    assert not (tmp_path / "s").exists()
    with pytest.raises(SynthloomError, match="--format dpo is not read as meant by TRL"):
        export(run_dir, tmp_path / "d", ExportOptions(format="dpo", target="trl"))
    chosen = export(run_dir, tmp_path / "t", ExportOptions(target="trl"))
    assert chosen.format == "messages" and not chosen.warnings
    first = rows_of(chosen.data_path)[0]
    assert [t["role"] for t in first["messages"]] == ["user", "assistant"]
    # Without --for, sharegpt is written, with the warning that TRL would misread it.
    plain = export(run_dir, tmp_path / "p", ExportOptions(format="sharegpt"))
    assert any("TRL maps no human/gpt roles" in w for w in plain.warnings)


def test_for_chooses_the_preference_format_of_each_trainer(tmp_path: Path) -> None:
    run = run_rows(tmp_path, "pairs", [{"prompt": "Q?", "chosen": "Good.", "rejected": "Bad."}])
    trl = export(run, tmp_path / "trl", ExportOptions(target="trl"))
    assert trl.format == "dpo-chat"
    assert rows_of(trl.data_path)[0]["chosen"] == [{"role": "assistant", "content": "Good."}]
    lf = export(run, tmp_path / "lf", ExportOptions(target="llamafactory"))
    assert lf.format == "dpo" and lf.dataset_info["pairs"]["ranking"] is True
    with pytest.raises(SynthloomError, match="--for openai: the records have the columns of "
                                             "none of messages"):
        export(run, tmp_path / "oa", ExportOptions(target="openai"))
    with pytest.raises(SynthloomError, match="--for 'axolotl': one of trl, llamafactory"):
        export(run, tmp_path / "x", ExportOptions(target="axolotl"))


def test_for_openai_writes_messages_only(run_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    done = export(run_dir, tmp_path / "o", ExportOptions(target="openai"))
    rows = rows_of(done.data_path)
    assert done.format == "messages" and all(set(r) == {"messages"} for r in rows)


def test_cli_for_target(run_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    runner = CliRunner()
    refused = runner.invoke(app, ["export", str(run_dir), "--format", "sharegpt", "--for",
                                  "trl", "--out", str(tmp_path / "a")])
    assert refused.exit_code == 2 and "not read as meant by TRL" in refused.output
    done = runner.invoke(app, ["export", str(run_dir), "--for", "llamafactory", "--out",
                               str(tmp_path / "b")])
    assert done.exit_code == 0, done.output
    assert "rows (alpaca)" in done.output and "read by: LLaMA-Factory" in done.output
    assert "warning" not in done.output  # asked for LLaMA-Factory: no TRL caution
