"""push_to_hub: refused without a token before anything is written; the upload itself through
``synthloom export --push-to-hub`` (a subprocess, so HF_ENDPOINT is read at import) against a
local Hub endpoint on 127.0.0.1 (tests/support/hub_server.py, a test double of the Hub's HTTP
API) that keeps what it was sent. The run to export comes from the scripted test backend."""

from __future__ import annotations

import fnmatch
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from synthloom.cli import app
from tests.support.hub_server import LocalHub
from tests.unit.test_export_formats import run_dir  # noqa: F401 - module-scoped run fixture

pytestmark = pytest.mark.integration

pytest.importorskip("datasets", reason="push_to_hub needs the hf extra (datasets)")
pq = pytest.importorskip("pyarrow.parquet")


def test_push_without_token_refuses_before_writing(run_dir, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.delenv("SYNTHLOOM_TEST_HF_TOKEN", raising=False)
    out = tmp_path / "export"
    result = CliRunner().invoke(app, [
        "export", str(run_dir), "--format", "jsonl", "--out", str(out),
        "--push-to-hub", "someone/data", "--token-env", "SYNTHLOOM_TEST_HF_TOKEN"])
    assert result.exit_code != 0
    assert "needs a Hugging Face token in $SYNTHLOOM_TEST_HF_TOKEN" in result.output
    assert not out.exists()  # nothing exported, nothing uploaded


TOKEN = "hf_local_test_token"


def push(run: Path, out: Path, hub: LocalHub, fmt: str, *extra: str, token: str = TOKEN
         ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_ENDPOINT": hub.base_url, "SYNTHLOOM_TEST_HF_TOKEN": token,
           # hf_xet's storage protocol is not spoken by the local Hub: plain Git LFS instead
           "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_HOME": str(out.parent / "hf-home")}
    env.pop("HF_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "synthloom", "export", str(run), "--format", fmt, "--out",
         str(out), "--push-to-hub", "someone/synth-data", "--token-env",
         "SYNTHLOOM_TEST_HF_TOKEN", *extra], capture_output=True, text=True, env=env,
        timeout=240)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def local_rows(out: Path, fmt: str) -> list[dict]:
    if fmt == "parquet":
        return pq.read_table(out / "train.parquet").to_pylist()
    if fmt == "hf":
        import datasets

        return datasets.load_from_disk(str(out)).to_list()
    return [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "hf", "sharegpt"])
def test_push_uploads_every_row_and_the_card(run_dir, tmp_path, fmt):  # noqa: F811
    out = tmp_path / "export"
    with LocalHub(token=TOKEN) as hub:
        done = push(run_dir, out, hub, fmt)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"pushed -> {hub.base_url}/datasets/someone/synth-data" in done.stdout
        repo = hub.repos["someone/synth-data"]
        assert repo.private  # the default --private
        shards = sorted(p for p in repo.files if p.startswith("data/") and p.endswith(".parquet"))
        assert shards, sorted(repo.files)
        uploaded = [row for name in shards
                    for row in pq.read_table(io.BytesIO(repo.files[name])).to_pylist()]
        expected = local_rows(out, fmt)
        # Every exported row, once, in order, with its columns, nested turns as turns (a struct
        # holds the union of the turns' keys: a key a turn lacks reads back as None).
        assert len(uploaded) == len(expected) == 11
        assert [_without_nulls(r) for r in uploaded] == [_without_nulls(r) for r in expected]
        # The card synthloom wrote, not the one datasets generated, is the repo's README; its
        # configs name the shards as uploaded, not the export folder's local file.
        card = repo.files["README.md"].decode()
        local = (out / "README.md").read_text()
        assert card.split("\n---\n", 1)[1] == local.split("\n---\n", 1)[1].replace(
            "- This folder holds other exports", "- The export folder held other exports")
        assert "path: data/train-*" in card and "train.jsonl" not in card.split("\n---\n")[0]
        assert all(fnmatch.fnmatch(name, "data/train-*") for name in shards)
        # Every API call carried the token; the storage upload (LFS PUT) did not get it.
        for request in hub.log:
            want = None if request.path.startswith("/lfs-upload/") else f"Bearer {TOKEN}"
            assert request.authorization == want, request
        assert TOKEN not in done.stdout + done.stderr


@pytest.mark.timeout(300)
def test_push_to_a_public_repo_and_a_refused_token(run_dir, tmp_path):  # noqa: F811
    with LocalHub(token=TOKEN) as hub:
        public = push(run_dir, tmp_path / "public", hub, "jsonl", "--no-private")
        assert public.returncode == 0, public.stdout + public.stderr
        assert not hub.repos["someone/synth-data"].private
    with LocalHub(token=TOKEN) as hub:
        refused = push(run_dir, tmp_path / "refused", hub, "jsonl", token="hf_wrong")
        # One clear line, non-zero exit; the local export is kept, nothing reached the repo.
        assert refused.returncode != 0
        said = refused.stdout + refused.stderr
        lines = [line for line in said.splitlines() if line.startswith("error:")]
        assert len(lines) == 1, said
        assert "someone/synth-data" in lines[0] and "HTTP 401" in lines[0], said
        assert "Invalid credentials" in said and "$SYNTHLOOM_TEST_HF_TOKEN" in said, said
        assert "Traceback" not in said and "hf_wrong" not in said
        assert (tmp_path / "refused" / "train.jsonl").is_file()
        assert hub.repos == {}
