"""push_to_hub: refused without a token before anything is written (scripted test backend run)."""

from __future__ import annotations

from typer.testing import CliRunner

from synthloom.cli import app
from tests.unit.test_export_formats import run_dir  # noqa: F401 - module-scoped run fixture


def test_push_without_token_refuses_before_writing(run_dir, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.delenv("SYNTHLOOM_TEST_HF_TOKEN", raising=False)
    out = tmp_path / "export"
    result = CliRunner().invoke(app, [
        "export", str(run_dir), "--format", "jsonl", "--out", str(out),
        "--push-to-hub", "someone/data", "--token-env", "SYNTHLOOM_TEST_HF_TOKEN"])
    assert result.exit_code != 0
    assert "needs a Hugging Face token in $SYNTHLOOM_TEST_HF_TOKEN" in result.output
    assert not out.exists()  # nothing exported, nothing uploaded
