"""Helpers for the reliability suites (tests/integration/test_reliability_*.py).

Deterministic responders for the scripted OpenAI test server (a test double, not a model): the
same request always gets the same answer, so a run interrupted, faulted or resumed must end with
exactly the records of an undisturbed run. Plus a CLI runner and run-folder readers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

from tests.support.fault_proxy import ScriptedOpenAIServer
from tests.support.runs import read_jsonl

SCRIPTED_MODEL = "scripted-model"


def _digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _last_user(request: dict[str, Any]) -> str:
    messages = request.get("messages") or []
    return str(messages[-1].get("content", "")) if messages else str(request.get("prompt", ""))


def quickstart_responder(request: dict[str, Any]) -> str:
    """Answers the quickstart recipe: a JSON instruction for schema calls, else a response."""
    text = _last_user(request)
    if "response_format" in request:
        title = re.search(r"^Title: (.+)$", text, re.MULTILINE)
        topic = title.group(1).strip() if title else "this topic"
        return json.dumps({"instruction": f"Explain the key steps of {topic} for a beginner."})
    words = re.findall(r"[A-Za-z]+", text)
    return f"Here is a clear answer about {' '.join(words[-6:])} (variant {_digest(text) % 97})."


def docqa_responder(request: dict[str, Any]) -> str:
    """Answers doc-qa's ``docqa_pairs`` calls with exactly the requested number of pairs, each
    answer a sentence of the passage (so the overlap grounding check keeps it)."""
    text = _last_user(request)
    passage = text.split('"""')[1] if text.count('"""') >= 2 else text
    schema = (request.get("response_format") or {}).get("json_schema", {}).get("schema") or {}
    n = int(schema.get("properties", {}).get("pairs", {}).get("minItems") or 1)
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", passage) if len(s.split()) >= 4]
    sentences = sentences or [" ".join(passage.split()[:12]) or "No text."]
    pairs = []
    for i in range(n):
        sentence = sentences[i % len(sentences)][:380]
        subject = " ".join(re.findall(r"[A-Za-z]+", sentence)[:4]) or "it"
        pairs.append({"question": f"What does the passage say in point {i + 1} about {subject}?",
                      "answer": sentence})
    return json.dumps({"pairs": pairs})


class HeaderRecordingServer(ScriptedOpenAIServer):
    """The scripted OpenAI test server, also recording each POST's Authorization header; a POST
    whose body contains ``echo_marker`` gets HTTP ``echo_status`` with that header echoed in
    the error message, like a misconfigured gateway that leaks what it was sent."""

    def __init__(self, *args: Any, echo_marker: str | None = None, echo_status: int = 400,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.echo_marker = echo_marker
        self.echo_status = echo_status
        self.auth_headers: list[str | None] = []

    def _handler_class(self) -> Any:
        base = super()._handler_class()
        server = self

        class Handler(base):  # type: ignore[misc, valid-type]
            _cached: bytes | None = None

            def _read_body(self) -> bytes:
                # do_POST below reads the body first; the scripted handler then gets it again.
                if self._cached is not None:
                    body, self._cached = self._cached, None
                    return body
                return super()._read_body()

            def do_POST(self) -> None:
                auth = self.headers.get("Authorization")
                server.auth_headers.append(auth)
                body = self._read_body()
                if server.echo_marker and server.echo_marker.encode() in body:
                    message = f"bad request; you sent Authorization: {auth}"
                    payload = json.dumps({"error": {"message": message}}).encode()
                    self._send(server.echo_status, payload)
                    return
                self._cached = body
                super().do_POST()

        return Handler


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "synthloom", *args]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120
            ) -> subprocess.CompletedProcess[str]:
    """``synthloom ARGS`` in a subprocess, output captured."""
    return subprocess.run(cli(*args), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def load_run(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    summary = json.loads((out / "summary.json").read_text())
    return summary, read_jsonl(out / "data.jsonl")


def assert_accounting_closes(summary: dict[str, Any], out: Path) -> None:
    """Per step in = out + failed + dropped (expand: expanded + ..., global: kept + ...), and
    data.jsonl holds exactly ``records`` rows with distinct ids."""
    for step in summary["steps"]:
        if step["kind"] in ("map", "filter"):
            assert step["in"] == step["out"] + step["failed"] + step["dropped"], step
        elif step["kind"] == "expand":
            assert step["in"] == step["expanded"] + step["failed"] + step["dropped"], step
        elif step["kind"] == "global":
            assert step["in"] == step["kept"] + step["failed"] + step["dropped"], step
    ids = [r["_meta"]["id"] for r in read_jsonl(out / "data.jsonl")]
    assert len(ids) == summary["records"] == len(set(ids)), "records lost or duplicated"


# --- a DOCX zip bomb ---------------------------------------------------------------------------

_CONTENT_TYPES = (
    b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
    b'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-'
    b'package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
    b'<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
    b'officedocument.wordprocessingml.document.main+xml"/></Types>')
_RELS = (
    b'<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
    b'relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
    b'officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>'
    b'</Relationships>')
_BODY_HEAD = (b'<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/'
              b'wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>')
_BODY_TAIL = b"</w:t></w:r></w:p></w:body></w:document>"


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


def _zip(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """A ZIP of already-deflated members: (name, raw deflate data, crc32, inflated size)."""
    out, central = bytearray(), bytearray()
    for name, packed, crc, size in members:
        raw_name, offset = name.encode(), len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(packed), size,
                           len(raw_name), 0) + raw_name + packed
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc,
                               len(packed), size, len(raw_name), 0, 0, 0, 0, 0, offset) + raw_name
    start = len(out)
    out += central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members),
                                 len(central), start, 0)
    return bytes(out)


def docx_zip_bomb(inflated_mib: int = 1024) -> bytes:
    """A well-formed DOCX whose document.xml is one paragraph of ``inflated_mib`` MiB of 'a':
    about 1 KB per MiB on disk. Built in well under a second: one MiB is deflated once and its
    block repeated (after a full flush each block stands alone)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    fill = b"a" * (1 << 20)
    head = packer.compress(_BODY_HEAD) + packer.flush(zlib.Z_FULL_FLUSH)
    block = packer.compress(fill) + packer.flush(zlib.Z_FULL_FLUSH)
    tail = packer.compress(_BODY_TAIL) + packer.flush()
    crc = zlib.crc32(_BODY_HEAD)
    for _ in range(inflated_mib):
        crc = zlib.crc32(fill, crc)
    crc = zlib.crc32(_BODY_TAIL, crc)
    size = len(_BODY_HEAD) + len(fill) * inflated_mib + len(_BODY_TAIL)
    return _zip([
        ("[Content_Types].xml", _raw_deflate(_CONTENT_TYPES), zlib.crc32(_CONTENT_TYPES),
         len(_CONTENT_TYPES)),
        ("_rels/.rels", _raw_deflate(_RELS), zlib.crc32(_RELS), len(_RELS)),
        ("word/document.xml", head + block * inflated_mib + tail, crc, size),
    ])
