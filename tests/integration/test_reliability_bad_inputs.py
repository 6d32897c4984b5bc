"""Reliability suite 3: a bad-input corpus, generated here, through one ``synthloom run doc-qa``
(the CLI, against the scripted OpenAI test server, a deterministic test double).

The corpus holds a corrupt and an encrypted PDF, a truncated DOCX, a zip bomb renamed .docx
(1 MB that inflates to 1 GiB), binary content renamed .txt, an empty file, a 200 MB text file
(sparse: written in no time), Latin-1 and UTF-16 text, HTML with scripts only and a JSONL with
broken lines, beside good documents. Each bad file (or JSONL line) is one failure line naming
the file and the cause; the run goes on and makes records from the good ones; it stays bounded
in time and memory (the size caps refuse the big file and the bomb before reading them).

Bad recipes (unknown keys, wrong types, invalid YAML, a bad --set, a missing corpus) exit
non-zero with a message naming the recipe file and the cause, before any LLM call.
"""

from __future__ import annotations

import resource
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from synthloom.cli import app
from tests.support.fault_proxy import ScriptedOpenAIServer
from tests.support.reliability import (
    SCRIPTED_MODEL,
    assert_accounting_closes,
    cli,
    docqa_responder,
    docx_zip_bomb,
    load_run,
    read_jsonl,
)
from tests.unit.test_documents_readers import encrypt_pdf, make_docx, make_pdf

pytestmark = pytest.mark.integration

BIG = 200 * 1024 * 1024

TIDES = """# Tides

Tides are the regular rise and fall of the sea surface along the coast. The pull of the Moon
on the oceans causes two high tides and two low tides on most coasts every day. Spring tides
happen near the full and the new Moon, when the Sun and the Moon pull in a line together.
Neap tides happen near the quarter Moons and have the smallest range between high and low
water. Harbour pilots read tide tables so that large ships never run aground at low water.
"""
LATIN1 = ("Crème brûlée is a French dessert of rich custard under a layer of hard caramel. "
          "The cook sprinkles sugar over the cold custard and burns it with a small torch. "
          "In Spain a similar dish called crema catalana is flavoured with lemon and cinnamon. "
          "Served at once, the caramel top cracks under the spoon with a pleasant sound.\n")
UTF16 = ("Die Brücke über den Fluss wurde im Jahr achtzehnhundert gebaut und trägt Züge. "
         "Ingenieure prüfen jedes Jahr die Stahlträger und die steinernen Pfeiler der Brücke. "
         "Im Winter schützt eine Schicht aus Farbe den Stahl vor Rost und Feuchtigkeit. "
         "Fußgänger überqueren die Brücke auf einem schmalen Weg neben den Gleisen.\n")
ROW = ("Honeybees live in colonies with one queen, thousands of workers and a few drones. "
       "Workers collect nectar and pollen and turn the nectar into honey inside wax cells. "
       "A forager tells the others where flowers grow with a waggle dance on the comb. ")


def make_corpus(root: Path) -> dict[str, tuple[str, str]]:
    """Writes the corpus; returns {bad file: (error class, a phrase of the cause)}."""
    good_pdf = make_pdf([["A readable page about owls and their silent flight at night."]])
    docx = make_docx()
    files: dict[str, bytes] = {
        "tides.md": TIDES.encode(),
        "latin1.txt": LATIN1.encode("latin-1"),
        "utf16.txt": UTF16.encode("utf-16"),
        "corrupt.pdf": good_pdf[:200] + b"\x00garbage" * 40,
        "encrypted.pdf": encrypt_pdf(good_pdf, "secret"),
        "truncated.docx": docx[: len(docx) // 2],
        "bomb.docx": docx_zip_bomb(1024),
        "binary.txt": b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8,
        "empty.txt": b"",
        "scripts.html": b"<html><head><script>var a = 1;</script></head>"
                        b"<body><script>run()</script></body></html>",
        "rows.jsonl": (f'{{"text": "{ROW} First."}}\n{{broken\n[1, 2]\n{{"body": "no text"}}\n'
                       f'{{"text": "{ROW} Second."}}\n').encode(),
    }
    root.mkdir()
    for name, data in files.items():
        (root / name).write_bytes(data)
    with (root / "huge.txt").open("wb") as handle:  # 200 MB, sparse: a text head, then a hole
        handle.write(b"A very long log file\n" * 1000)
        handle.truncate(BIG)
    return {
        "corrupt.pdf": ("CorruptDocument", "PDF cannot be parsed"),
        "encrypted.pdf": ("EncryptedDocument", "encrypted"),
        "truncated.docx": ("CorruptDocument", "DOCX cannot be opened"),
        "bomb.docx": ("FileTooLarge", "zip bomb"),
        "binary.txt": ("BinaryContent", "ELF"),
        "empty.txt": ("EmptyDocument", "0 bytes"),
        "huge.txt": ("FileTooLarge", f"{BIG} bytes exceeds max_bytes="),
        "scripts.html": ("EmptyDocument", "no main content"),
    }


def _limit_memory() -> None:
    # A safety net for the shared machine: a regression that inflates the bomb fails the run
    # (and this test) instead of eating the host's memory.
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def _peak_rss_kb(proc: subprocess.Popen) -> int:
    """The child's own high-water RSS (VmHWM of its exec'd image), read until it exits.

    Not ``wait4``'s ru_maxrss: Linux carries the pre-exec high-water mark into it, so a child
    forked from a big pytest process (late in the suite: ~1 GB) would report the parent's size.
    """
    peak = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError):
            pass  # exiting right now
        time.sleep(0.02)
    return peak


def test_bad_corpus_fails_file_by_file_and_the_run_goes_on(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    expected = make_corpus(corpus)
    out = tmp_path / "run"
    with ScriptedOpenAIServer(docqa_responder) as server:
        args = ["run", "doc-qa", "--out", str(out), "--quiet", "--backend",
                f"openai:{server.base_url}", "--model", SCRIPTED_MODEL,
                "--set", f"corpus={corpus}"]
        began = time.monotonic()
        with (tmp_path / "stderr").open("w") as err:
            proc = subprocess.Popen(cli(*args), stdout=subprocess.DEVNULL, stderr=err,
                                    preexec_fn=_limit_memory)
            try:
                peak_kb = _peak_rss_kb(proc)
            except BaseException:
                proc.kill()
                raise
        seconds = time.monotonic() - began
    assert proc.returncode == 0, (tmp_path / "stderr").read_text()
    # Bounded: refused by size, never read (a 1 GiB inflate alone takes seconds and GBs).
    assert seconds < 30, seconds
    peak_mb = peak_kb / 1024
    assert peak_mb < 350, f"peak RSS {peak_mb:.0f} MB: a big input was read into memory"

    summary, rows = load_run(out)
    assert_accounting_closes(summary, out)
    failed = read_jsonl(out / "failed.jsonl")
    assert all(f["step"] == "documents" for f in failed)
    by_file: dict[str, list[dict[str, Any]]] = {}
    for f in failed:
        by_file.setdefault(Path(f["where"].rsplit(":", 1)[0]).name, []).append(f)
    for name, (error_class, cause) in expected.items():
        [failure] = by_file.pop(name)
        assert failure["error_class"] == error_class, failure
        assert cause in failure["message"] and str(corpus / name) in failure["message"], failure
    # The JSONL: each broken line is its own failure, naming file:line.
    lines = sorted((f["where"].rsplit(":", 1)[1], f["error_class"]) for f in by_file.pop(
        "rows.jsonl"))
    assert lines == [("2", "CorruptDocument"), ("3", "CorruptDocument"), ("4", "MissingColumn")]
    assert not by_file, by_file

    # The good documents (odd encodings included) went all the way to records.
    [source] = [s for s in summary["steps"] if s["name"] == "documents"]
    assert (source["out"], source["failed"]) == (5, 11)
    made_from = {Path(r["_meta"]["source"]["path"]).name for r in rows}
    assert made_from == {"tides.md", "latin1.txt", "utf16.txt", "rows.jsonl"}
    answers = " ".join(r["answer"] for r in rows)
    assert "Crème brûlée" in answers and "Brücke" in answers
    assert server.count() > 0 and summary["llm"]["failed_requests"] == 0


BAD_RECIPE = """name: bad
sources:
  - name: documents
    type: documents
    path: ./corpus
    colour: blue
steps:
  - name: qa
    type: docqa_pairs
    pairs: many
    temprature: 0.3
sinks:
  - {type: jsonl, path: data.jsonl}
"""


@pytest.mark.parametrize(("recipe", "sets", "causes"), [
    ("unknown_keys_and_types.yaml", [], ["sources[0] (documents): unknown key 'colour'"]),
    ("wrong_types.yaml", [], ["steps[0] (qa): pairs: Input should be a valid integer",
                              "unknown key 'temprature'"]),
    ("not_yaml.yaml", [], ["not valid YAML"]),
    ("doc-qa", ["pairs_per_chunk=many"], ["steps[1] (qa): pairs", "got 'many'"]),
    ("doc-qa", ["no_such_param=1"], ["no such parameter"]),
    ("doc-qa", ["corpus=/nonexistent/corpus"],
     ["source documents: path not found: /nonexistent/corpus"]),
])
def test_recipe_errors_exit_non_zero_before_any_llm_call(
        tmp_path: Path, recipe: str, sets: list[str], causes: list[str]) -> None:
    texts = {"unknown_keys_and_types.yaml": BAD_RECIPE,
             "wrong_types.yaml": BAD_RECIPE.replace("    colour: blue\n", ""),
             "not_yaml.yaml": "name: bad\nsteps: [\n"}
    if recipe in texts:
        (tmp_path / recipe).write_text(texts[recipe])
        recipe = str(tmp_path / recipe)
    out = tmp_path / "out"
    with ScriptedOpenAIServer(docqa_responder) as server:
        args = ["run", recipe, "--out", str(out), "--quiet", "--backend",
                f"openai:{server.base_url}", "--model", SCRIPTED_MODEL]
        for item in sets:
            args += ["--set", item]
        result = CliRunner().invoke(app, args)
        seen = server.requests()
    assert result.exit_code != 0
    message = " ".join(result.output.split())
    for cause in causes:
        assert cause in message, message
    assert [e for e in seen if e.method == "POST"] == []  # no LLM call
    if "path not found" not in causes[0]:
        # Failed while loading: the message names the recipe file; nothing was touched.
        assert f"error: recipe {recipe if recipe.endswith('.yaml') else ''}" in message, message
        assert seen == [] and not out.exists()
