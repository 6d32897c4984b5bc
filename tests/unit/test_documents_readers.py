"""The ``documents`` source and its readers on files these tests generate: good files of every
format, and bad ones (corrupt, encrypted, truncated, binary, empty, odd encodings, broken rows)."""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path

import pytest

from synthloom.api import RunOptions, run_recipe
from synthloom.core.context import RunContext
from synthloom.core.errors import RecipeError
from synthloom.core.recipe import Recipe
from synthloom.core.records import Output
from synthloom.core.steps import SourceFailure
from synthloom.sources.decode import decode_text
from synthloom.sources.document import BinaryContent, DecodeFailed
from synthloom.sources.documents import Documents, walk

# --- generators for test files ---------------------------------------------------------------


def make_pdf(pages: list[list[str]]) -> bytes:
    """A minimal valid PDF: one Helvetica text line per string, one page per list."""
    objects: list[bytes] = []
    n = len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    font_id = 3 + 2 * n
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode())
    for i, lines in enumerate(pages):
        ops = ["BT", "/F1 12 Tf", "72 720 Td"]
        for j, line in enumerate(lines):
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj" if j == 0 else f"0 -16 Td ({escaped}) Tj")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def encrypt_pdf(data: bytes, user_password: str) -> bytes:
    pypdf = pytest.importorskip("pypdf")
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(data))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx() -> bytes:
    docx = pytest.importorskip("docx")
    document = docx.Document()
    document.add_heading("Tide Pools", level=1)
    document.add_paragraph("Tide pools form where the sea leaves water among the rocks.")
    document.add_heading("Residents", level=2)
    document.add_paragraph("Anemones and crabs", style="List Bullet")
    table = document.add_table(rows=3, cols=2)
    for r, (a, b) in enumerate([("Animal", "Food"), ("Crab", "Algae"), ("Star", "Mussels")]):
        table.cell(r, 0).text, table.cell(r, 1).text = a, b
    merged = document.add_table(rows=2, cols=2)
    merged.cell(0, 0).merge(merged.cell(0, 1)).text = "Spanning header"
    merged.cell(1, 0).text, merged.cell(1, 1).text = "left", "right"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def read_all(path: Path, **config: object) -> list[Output | SourceFailure]:
    source = Documents(name="docs", path=str(path), **config)
    return list(source.read(RunContext(run_dir=path)))


def docs_of(items: list) -> dict[str, dict]:
    return {i.columns["path"]: i.columns for i in items if isinstance(i, Output)}


def failures_of(items: list) -> dict[str, SourceFailure]:
    return {Path(f.where.split(":")[0].split("#")[0]).name: f for f in items
            if isinstance(f, SourceFailure)}


# --- good files --------------------------------------------------------------------------------


def test_text_markdown_and_html_keep_title_and_headings(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Kettles\n\nA kettle boils water.\n")
    (tmp_path / "b.md").write_text("Intro line\n\n# Bread Basics\n\nFlour and water.\n")
    (tmp_path / "c.html").write_text(
        "<html><head><title>Garden Guide</title><script>var x = 1;</script></head><body>"
        "<nav>Home | About</nav><article><h1>Garden Guide</h1>"
        "<p>Water tomatoes in the morning so the leaves dry before night falls.</p>"
        "<h2>Pruning</h2><p>Remove suckers below the first flower cluster every week.</p>"
        "</article></body></html>")
    docs = docs_of(read_all(tmp_path))
    assert docs["a.txt"]["title"] == "Kettles" and docs["a.txt"]["format"] == "text"
    assert docs["b.md"]["title"] == "Bread Basics" and docs["b.md"]["format"] == "markdown"
    html = docs["c.html"]
    assert html["title"] == "Garden Guide" and html["format"] == "html"
    assert "# Garden Guide" in html["text"] and "## Pruning" in html["text"]
    assert "var x" not in html["text"] and "Remove suckers" in html["text"]


def test_pdf_keeps_page_spans(tmp_path: Path) -> None:
    (tmp_path / "two.pdf").write_bytes(make_pdf([["First page text.", "More on page one."],
                                                 ["Second page here."]]))
    [doc] = docs_of(read_all(tmp_path)).values()
    assert doc["format"] == "pdf" and doc["n_pages"] == 2
    first, second = doc["page_spans"]
    assert "First page text." in doc["text"][first[0]:first[1]]
    assert doc["text"][second[0]:second[1]] == "Second page here."
    assert doc["title"] == "First page text."


def test_docx_headings_lists_and_tables(tmp_path: Path) -> None:
    (tmp_path / "pools.docx").write_bytes(make_docx())
    [doc] = docs_of(read_all(tmp_path)).values()
    text = doc["text"]
    assert doc["title"] == "Tide Pools"
    assert "# Tide Pools" in text and "## Residents" in text and "- Anemones and crabs" in text
    assert "| Crab | Algae |" in text
    # A merged cell is written once, not once per grid column it spans.
    assert "| Spanning header |" in text and "Spanning header | Spanning header" not in text


def test_tabular_formats_with_text_column(tmp_path: Path) -> None:
    rows = [{"q": "What is two plus two?", "a": "4"}, {"q": "Name a prime.", "a": "7"}]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "rows.csv").write_text("q,a\n\"What is two plus two?\",4\n\"Name a prime.\",7\n")
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "rows.parquet")
    items = read_all(tmp_path, text_column="q", keep_columns=["a"])
    docs = [i.columns for i in items if isinstance(i, Output)]
    assert len(docs) == 6 and not failures_of(items)
    for fmt in ("jsonl", "csv", "parquet"):
        got = [(d["text"], str(d["a"])) for d in docs if d["format"] == fmt]
        assert got == [("What is two plus two?", "4"), ("Name a prime.", "7")], fmt
    where = [i.meta["where"] for i in items if isinstance(i, Output)]
    assert where[0].endswith("rows.csv:2") and where[-1].endswith("rows.parquet#row=1")


def test_hf_dataset_saved_to_disk(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="datasets not installed (extra: hf)")
    folder = tmp_path / "corpus" / "hf_set"
    datasets.Dataset.from_list([{"body": "Alpha text."}, {"body": "Beta text."}]).save_to_disk(
        str(folder))
    items = read_all(tmp_path / "corpus", text_column="body")
    assert [i.columns["text"] for i in items if isinstance(i, Output)] == ["Alpha text.",
                                                                           "Beta text."]
    assert all(i.columns["format"] == "hf" for i in items)


def test_folder_is_recursive_sorted_filtered_and_skips_hidden(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.txt").write_text("zed")
    (tmp_path / "a.md").write_text("# A\n\nalpha")
    (tmp_path / ".hidden.txt").write_text("secret")
    (tmp_path / "notes.xyz").write_text("unknown extension")
    assert [str(p.relative_to(tmp_path)) for p in walk(tmp_path)] == ["a.md", "b/z.txt",
                                                                      "notes.xyz"]
    assert list(docs_of(read_all(tmp_path))) == ["a.md", "b/z.txt"]
    assert list(docs_of(read_all(tmp_path, extensions=["md"]))) == ["a.md"]
    # A single file with an unknown extension is read as text (content decides).
    assert docs_of(read_all(tmp_path / "notes.xyz"))["notes.xyz"]["text"] == "unknown extension"


def test_doc_id_is_the_text_hash(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("Same words.")
    (tmp_path / "y.md").write_text("Same words.")
    docs = docs_of(read_all(tmp_path))
    assert docs["x.txt"]["doc_id"] == docs["y.md"]["doc_id"]
    (tmp_path / "y.md").write_text("Other words.")
    assert docs_of(read_all(tmp_path))["y.md"]["doc_id"] != docs["x.txt"]["doc_id"]


# --- encodings -----------------------------------------------------------------------------------


def test_decoding_order_utf8_bom_latin1() -> None:
    assert decode_text("naïve".encode()) == ("naïve", "utf-8")
    assert decode_text("Grüße".encode("utf-16")) == ("Grüße", "utf-16")
    assert decode_text("Grüße".encode("utf-8-sig")) == ("Grüße", "utf-8-sig")
    text, encoding = decode_text("Café crème, “quoted”".encode("cp1252"))
    assert text == "Café crème, “quoted”" and encoding == "cp1252"
    assert decode_text("façade".encode("latin-1"))[0] == "façade"
    with pytest.raises(BinaryContent, match="PNG"):
        decode_text(b"\x89PNG\r\n\x1a\n" + b"text" * 10)
    with pytest.raises(BinaryContent, match="NUL"):
        decode_text(b"abc\x00def")
    with pytest.raises(DecodeFailed):
        decode_text(bytes(range(128, 256)) * 8 + bytes(range(1, 32)) * 4)


def test_latin1_and_utf16_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "latin.txt").write_bytes("Crème brûlée à la française.\n".encode("latin-1"))
    (tmp_path / "wide.txt").write_bytes("Grüße aus Köln.\n".encode("utf-16"))
    docs = docs_of(read_all(tmp_path))
    assert docs["latin.txt"]["text"] == "Crème brûlée à la française."
    assert docs["wide.txt"]["text"] == "Grüße aus Köln."


# --- bad files: each a failure naming the file and the cause; the rest is read ----------------


@pytest.fixture
def bad_corpus(tmp_path: Path) -> Path:
    good = make_pdf([["A readable page about owls."]])
    (tmp_path / "good.pdf").write_bytes(good)
    (tmp_path / "corrupt.pdf").write_bytes(good[:200] + b"\x00garbage" * 40)
    (tmp_path / "not_a_pdf.pdf").write_text("plain words, no PDF header")
    (tmp_path / "locked.pdf").write_bytes(encrypt_pdf(good, "secret"))
    (tmp_path / "owner_only.pdf").write_bytes(encrypt_pdf(good, ""))
    (tmp_path / "image_only.pdf").write_bytes(make_pdf([[]]))
    docx_bytes = make_docx()
    (tmp_path / "truncated.docx").write_bytes(docx_bytes[: len(docx_bytes) // 2])
    (tmp_path / "photo.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(512))
    (tmp_path / "noise.txt").write_bytes(bytes(range(128, 256)) * 8 + bytes(range(1, 32)) * 8)
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.md").write_text("  \n\n ")
    (tmp_path / "scripts.html").write_text(
        "<html><head><script>var a = 1;</script></head><body><script>go()</script></body></html>")
    (tmp_path / "rows.jsonl").write_text('{"text": "first"}\n{broken\n[1, 2]\n{"x": 1}\n'
                                         '{"text": ""}\n{"text": "last"}\n')
    (tmp_path / "big.txt").write_text("word " * 8000)
    return tmp_path


def test_bad_files_become_failures_naming_file_and_cause(bad_corpus: Path) -> None:
    items = read_all(bad_corpus, max_bytes=30000)
    failures = failures_of(items)
    expected = {
        "corrupt.pdf": ("CorruptDocument", "PDF cannot be parsed"),
        "not_a_pdf.pdf": ("CorruptDocument", "not a PDF file"),
        "locked.pdf": ("EncryptedDocument", "encrypted"),
        "image_only.pdf": ("EmptyDocument", "no text layer"),
        "truncated.docx": ("CorruptDocument", "DOCX cannot be opened"),
        "photo.txt": ("BinaryContent", "PNG image"),
        "noise.txt": ("DecodeFailed", "not UTF-8"),
        "empty.txt": ("EmptyDocument", "0 bytes"),
        "blank.md": ("EmptyDocument", "no text"),
        "scripts.html": ("EmptyDocument", "no main content"),
        "big.txt": ("FileTooLarge", "max_bytes=30000"),
    }
    for name, (error_class, cause) in expected.items():
        failure = failures.pop(name)
        assert failure.error_class == error_class, (name, failure)
        assert cause in failure.message, (name, failure)
        assert name in failure.where
    # JSONL rows: each bad row is its own failure with file:line.
    row_failures = sorted((f.where.rsplit(":", 1)[1], f.error_class) for f in items
                          if isinstance(f, SourceFailure) and "rows.jsonl" in f.where)
    assert row_failures == [("2", "CorruptDocument"), ("3", "CorruptDocument"),
                            ("4", "MissingColumn"), ("5", "EmptyDocument")]
    docs = [i.columns for i in items if isinstance(i, Output)]
    # Owner-password-only PDFs open with the empty user password.
    assert sorted(d["text"] for d in docs) == ["A readable page about owls.",
                                               "A readable page about owls.", "first", "last"]


# Reads each PDF with cryptography (and pycryptodome) made unimportable before pypdf is imported,
# as on a machine without the crypto library: pypdf then falls back to its AES-less provider.
_READ_WITHOUT_CRYPTO = """
import json, sys
sys.modules["cryptography"] = None
sys.modules["Crypto"] = None
from synthloom.sources.pdf_reader import read_pdf
out = {}
for path in sys.argv[1:]:
    try:
        out[path] = ["ok", read_pdf(open(path, "rb").read()).text]
    except Exception as exc:
        out[path] = [type(exc).__name__, str(exc)]
print(json.dumps(out))
"""


def test_aes_pdf_without_crypto_library_is_a_clear_failure_and_the_rest_is_read(
        tmp_path: Path) -> None:
    import subprocess
    import sys

    good = make_pdf([["A readable page about owls."]])
    paths = {"aes_owner_only.pdf": encrypt_pdf(good, ""), "plain.pdf": good}
    for name, data in paths.items():
        (tmp_path / name).write_bytes(data)
    proc = subprocess.run([sys.executable, "-c", _READ_WITHOUT_CRYPTO,
                           *(str(tmp_path / n) for n in paths)],
                          capture_output=True, text=True, timeout=120, check=True)
    result = {Path(k).name: v for k, v in json.loads(proc.stdout).items()}
    error_class, message = result["aes_owner_only.pdf"]
    assert error_class == "EncryptedDocument"
    assert "cryptography" in message and "pip install" in message
    assert result["plain.pdf"] == ["ok", "A readable page about owls."]


def test_aes_pdf_with_empty_user_password_is_read_with_the_crypto_dependency() -> None:
    from synthloom.sources.pdf_reader import read_pdf

    good = make_pdf([["A readable page about owls."]])
    assert read_pdf(encrypt_pdf(good, "")).text == "A readable page about owls."
    with pytest.raises(Exception, match="not opened by an empty password"):
        read_pdf(encrypt_pdf(good, "secret"))


def test_missing_path_is_a_recipe_error(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="path not found"):
        read_all(tmp_path / "nope")


def test_a_run_writes_failure_lines_and_goes_on(bad_corpus: Path,
                                                tmp_path_factory: pytest.TempPathFactory) -> None:
    recipe = Recipe(name="read", sources=[Documents(name="docs", path=str(bad_corpus),
                                                    max_bytes=30000)])
    out = tmp_path_factory.mktemp("run")
    summary = asyncio.run(run_recipe(recipe, out, RunOptions())).to_json()
    [source] = summary["steps"]
    assert source["in"] == source["out"] + source["failed"] + source["dropped"]
    # The owner-only PDF has the same text as good.pdf but another path: both are kept.
    assert source["out"] == 4 and source["failed"] == 15 and source["dropped"] == 0
    failed = [json.loads(x) for x in (out / "failed.jsonl").read_text().splitlines()]
    assert len(failed) == 15
    assert {f["error_class"] for f in failed} >= {"CorruptDocument", "BinaryContent",
                                                  "EncryptedDocument", "EmptyDocument"}
    assert all(f["step"] == "docs" and str(bad_corpus) in f["message"] for f in failed)
    data = [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines()]
    assert {d["path"] for d in data} == {"good.pdf", "owner_only.pdf", "rows.jsonl"}
    assert all(d["_meta"]["source"]["id"] == d["_meta"]["id"] for d in data)
    assert all(d["_meta"]["source"]["path"].endswith(d["path"]) for d in data)
