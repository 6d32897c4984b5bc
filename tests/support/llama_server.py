"""A real ``llama_cpp.server`` on loopback, serving the embedded SmolLM2-135M GGUF, for tests.

Findings, verified by hand against llama-cpp-python 0.3.36 (``llama_cpp.__version__``) serving
``SmolLM2-135M-Instruct.Q4_1.gguf`` with ``--n_ctx 2048 --n_threads 2`` on a 2-core CPU:

Startup and model name
  - Ready (``GET /v1/models`` -> 200) about 1 s after launch. ``/v1/models`` lists one model whose
    ``id`` is the ``--model_alias`` ("smollm2"), ``owned_by`` "me".
  - The ``model`` field of a request is not checked (one model is served): any name works and is
    echoed back in the response's ``model``; with no ``model`` the response names the GGUF path.

Concurrency
  - Requests are served strictly one at a time (an asyncio lock around the model). Four
    concurrent 48-token chats finish at ~1, 2, 3, 4.5 s. ``GET /v1/models`` takes the same lock,
    so it waits for the running generation. Throughput: ~40 tokens/s generated, prompt eval fast.

response_format (chat only)
  - Accepted: ``{"type": "json_object", "schema": {...}}`` (a JSON schema compiled to a GBNF
    grammar), ``{"type": "json_object"}`` (any JSON) and ``{"type": "text"}``.
  - Rejected: ``{"type": "json_schema", "json_schema": {"name": ..., "schema": ...}}`` (the
    OpenAI form) -> HTTP **500** (not 4xx) with an OpenAI-style error body whose message is a
    pydantic literal_error ("Input should be 'text' or 'json_object'"). Treat it as permanent.
  - The grammar fixes the shape (keys, enum values, types; "format"/"pattern" are not enforced)
    but output is not always valid strict JSON: strings may hold raw newlines/control characters
    (``json.loads`` fails, ``json.loads(text, strict=False)`` works), and with a small
    ``max_tokens`` the JSON is cut off (``finish_reason`` "length"). Validate after parsing.
  - ``/v1/completions`` ignores ``response_format`` silently; it takes a raw GBNF string in
    ``grammar`` (also accepted on chat), e.g. ``root ::= "yes" | "no"`` works.

seed
  - Honoured on chat and completions: the same ``seed`` with temperature 0.9-1.0 gives the same
    text, also after other requests in between; different seeds differ. Without a seed each
    request reseeds from the previous seed (outputs differ run to run of requests).
  - ``n`` is accepted but ignored: always one choice.

/v1/completions with a raw prompt
  - Works (no chat template applied; ``object`` "text_completion", ``choices[0].text``).
    Its default ``max_tokens`` is 16, so always send one. Chat's default is unlimited (to n_ctx).

Other behaviour
  - Responses carry ``usage`` (prompt/completion/total tokens) and ``finish_reason``
    ("stop" or "length"); ``stop`` strings are supported.
  - Prompt + max_tokens over n_ctx -> HTTP 400, ``code`` "context_length_exceeded".
  - A body that is not JSON -> HTTP 500 with a plain-text "Internal Server Error" body.
  - Empty ``messages`` -> 200 (the template's default system prompt is used).
  - The GGUF's chat template is ChatML (``<|im_start|>role ... <|im_end|>``) with a default
    system prompt ("You are a helpful AI assistant named SmolLM...") when none is given.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

DEFAULT_ALIAS = "smollm2"
STARTUP_TIMEOUT_S = 180.0


def free_port() -> int:
    """A port that was free a moment ago (the server binds it itself, so a tiny race remains)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return text[-limit:]


class LlamaServer:
    """Context manager running ``python -m llama_cpp.server`` on 127.0.0.1 and a free port.

    ``base_url`` is ``http://127.0.0.1:PORT/v1``; ``model`` is the name to send (the alias);
    ``pid`` the server process id; ``log_path`` its combined stdout/stderr.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        alias: str = DEFAULT_ALIAS,
        n_ctx: int = 2048,
        n_threads: int = 2,
        startup_timeout_s: float = STARTUP_TIMEOUT_S,
        extra_args: list[str] | None = None,
    ) -> None:
        if model_path is None:
            # Imported lazily so collecting tests never needs the model package.
            from synthloom.llm.embedded import embedded_model_path

            model_path = embedded_model_path()
        self.model_path = Path(model_path)
        self.model = alias
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.startup_timeout_s = startup_timeout_s
        self.extra_args = list(extra_args or [])
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self.log_path = Path(os.devnull)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("LlamaServer is not started")
        return self._proc.pid

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-c",
            # llama_cpp.server, with the embedded backend's AMX setting (llamacpp_cpu.py)
            "from synthloom.llm.backends.llamacpp_cpu import serve_main; serve_main()",
            "--model",
            str(self.model_path),
            "--model_alias",
            self.model,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(self.n_threads),
            "--n_threads_batch",
            str(self.n_threads),
            # mlock needs a raised RLIMIT_MEMLOCK in containers; it only adds warnings here.
            "--use_mlock",
            "False",
            *self.extra_args,
        ]

    def start(self) -> Self:
        if self._proc is not None:
            return self
        self._tmpdir = tempfile.TemporaryDirectory(prefix="synthloom-llama-")
        self.log_path = Path(self._tmpdir.name) / "server.log"
        self.port = free_port()
        # A file, not a pipe: nobody reads a pipe while tests run, and a full one blocks the server.
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        url = f"{self.base_url}/models"
        with httpx.Client(timeout=2.0) as client:
            while True:
                assert self._proc is not None
                code = self._proc.poll()
                if code is not None:
                    raise RuntimeError(
                        f"llama_cpp.server exited with code {code} before it was ready; "
                        f"log tail:\n{_tail(self.log_path)}"
                    )
                try:
                    if client.get(url).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"llama_cpp.server not ready after {self.startup_timeout_s:.0f} s; "
                        f"log tail:\n{_tail(self.log_path)}"
                    )
                time.sleep(0.2)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            # By PID: only the process we started, never a name match.
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def log_tail(self, limit: int = 4000) -> str:
        return _tail(self.log_path, limit)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
