"""Any OpenAI-compatible HTTP server: vLLM, SGLang, Ollama, llama.cpp server, hosted APIs."""

from __future__ import annotations

import email.utils
import logging
import os
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from synthloom.core.errors import BackendError
from synthloom.llm.backends.base import Backend
from synthloom.llm.backends.http import (
    HttpBodyTooLarge,
    HttpResponse,
    HttpTransportError,
    Transport,
    choose_transport,
    make_transport,
    max_body_bytes,
)
from synthloom.llm.toolcalls import calls_in_message
from synthloom.llm.types import (
    LLMRequest,
    PermanentLLMError,
    RawCompletion,
    TransientLLMError,
    Usage,
    normalize_logprobs,
)

log = logging.getLogger(__name__)

STRUCTURED_MODES = ("auto", "json_schema", "json_object", "none")
#: "native": ``tools`` sent, ``tool_calls`` read (vLLM/SGLang with a tool parser, llama.cpp's
#: server with a function-calling chat format, hosted APIs); "constrained": the client asks for
#: a schema-constrained {tool_calls | content} answer instead (a server with no tool parser).
TOOL_MODES = ("native", "constrained")
_TRANSIENT_STATUS = {408, 409, 425, 429}
#: HTTP requests one ``complete`` call can make: ``check()`` (GET /models, GET /props) when no
#: model is set yet, the POST, and the POST again when ``json_schema`` is refused.
MAX_REQUESTS_PER_CALL = 4
_MAX_MESSAGE = 300
#: Tokenize endpoints, tried in order by ``check()`` (path under the server root, body):
#: vLLM (POST /tokenize {"model", "prompt"} -> {"tokens", "count"}), llama.cpp's C++ server
#: (POST /tokenize {"content"} -> {"tokens"}), llama-cpp-python's server
#: (POST /extras/tokenize {"input"} -> {"tokens"}; llama_cpp/server/app.py).
_TOKENIZE_ENDPOINTS = (("/tokenize", "prompt"), ("/tokenize", "content"),
                       ("/extras/tokenize", "input"))
#: The context window in an OpenAI-style "context_length_exceeded" answer (vLLM, llama-cpp-
#: python's server, OpenAI): learned from the first refusal, so later items are packed to fit.
_CONTEXT_IN_ERROR = re.compile(r"maximum context length is (\d+) tokens")


class _Secret:
    """Holds the API key so that no repr, traceback local or log line can show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value or None

    def get(self) -> str | None:
        return self._value

    def __repr__(self) -> str:
        return "_Secret(***)" if self._value else "_Secret(None)"

    __str__ = __repr__


def _public_url(url: str) -> str:
    """The URL without user:password and query (which may carry credentials)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP-date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


class OpenAIBackend(Backend):
    """POSTs to ``{base_url}/chat/completions`` or ``{base_url}/completions``; one call each."""

    kind = "openai"
    supports_raw_prompt = True
    default_concurrency = 16
    supports_logprobs = True

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 120.0,
        structured: str = "auto",
        transport: str = "auto",
        max_response_bytes: int | None = None,
        tools: str = "native",
    ) -> None:
        if tools not in TOOL_MODES:
            raise BackendError(f"unknown tools mode {tools!r}; use one of {', '.join(TOOL_MODES)}")
        self.tools_mode = tools
        self.supports_tools = tools == "native"
        if structured not in STRUCTURED_MODES:
            raise BackendError(
                f"unknown structured mode {structured!r}; use one of {', '.join(STRUCTURED_MODES)}"
            )
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BackendError(f"invalid base URL {_public_url(base_url)!r}: expected http(s)://…")
        self.base_url = base_url.rstrip("/")
        self.public_url = _public_url(self.base_url)
        self.model = model
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        self.structured = structured
        # "auto" starts with json_schema (vLLM, SGLang, Ollama, llama.cpp's C++ server, OpenAI)
        # and drops to json_object once if the server rejects it (llama-cpp-python's server).
        self._wire_mode = "json_schema" if structured == "auto" else structured
        self.supports_json_schema = structured != "none"
        self._key = _Secret(os.environ.get(api_key_env))
        try:
            self.transport = choose_transport(transport, self.base_url)
        except ValueError as exc:
            raise BackendError(str(exc)) from exc
        self._transport: Transport | None = None
        #: (path, body key) of the server's tokenize endpoint, found by ``check()``.
        self._tokenize: tuple[str, str] | None = None
        self._probed = False
        self._sync_http: Any = None
        #: The context window the server states (``max_model_len``, llama.cpp's n_ctx).
        self._context_length: int | None = None
        self.context_length_source = "server"
        try:
            #: The largest response body read (default 64 MiB; SYNTHLOOM_MAX_RESPONSE_MB).
            self.max_response_bytes = max_body_bytes(max_response_bytes)
        except ValueError as exc:
            raise BackendError(str(exc)) from exc

    def __repr__(self) -> str:
        return (
            f"OpenAIBackend(base_url={self.public_url!r}, model={self.model!r}, "
            f"api_key_env={self.api_key_env!r}, structured={self.structured!r}, "
            f"transport={self.transport!r})"
        )

    __str__ = __repr__

    @property
    def model_id(self) -> str:
        if self.model is None:
            raise BackendError(
                f"no model chosen for {self.public_url}: pass model=… or call check() first"
            )
        # The served model's name, not the URL: the same model moved to another host or port
        # keeps its cache.
        return f"openai:{self.model}"

    @property
    def resolved_model(self) -> str | None:
        return self.model

    @property
    def max_call_s(self) -> float | None:
        # h11's and aiohttp's timeout_s bounds each HTTP request, reading the body included; a
        # call makes at most MAX_REQUESTS_PER_CALL of them. httpx's timeout is per operation
        # (a trickling body can outlast it): no bound of its own.
        bounded = self.transport in ("h11", "aiohttp")
        return self.timeout_s * MAX_REQUESTS_PER_CALL if bounded else None

    # --- HTTP plumbing ----------------------------------------------------------------------

    def _http(self) -> Transport:
        if self._transport is None:
            headers = {"Accept": "application/json"}
            key = self._key.get()
            if key:
                headers["Authorization"] = f"Bearer {key}"
            self._transport = make_transport(self.transport, headers, self.timeout_s,
                                             self.max_response_bytes)
        return self._transport

    def _redact(self, text: str) -> str:
        key = self._key.get()
        if key:
            text = text.replace(key, "***")
        return text

    def _server_message(self, response: HttpResponse) -> str:
        """The server's own error message, truncated and with the key scrubbed."""
        try:
            body = response.json()
        except ValueError:
            body = None
        msg: Any = None
        if isinstance(body, dict):
            err = body.get("error")
            if isinstance(err, dict):
                msg = err.get("message") or err
            elif err:
                msg = err
            else:
                msg = body.get("detail") or body.get("message") or body
        if msg is None:
            msg = response.text
        text = self._redact(str(msg).strip() or response.reason)
        return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "…"

    def _auth_error(self) -> BackendError:
        return BackendError(
            f"authentication failed at {self.public_url}: check the API key in ${self.api_key_env}"
        )

    def _transport_error(self, exc: HttpTransportError, what: str) -> Exception:
        if exc.bad_url:
            return BackendError(f"invalid LLM server URL {self.public_url}: {exc}")
        if isinstance(exc, HttpBodyTooLarge):  # asking again would read as much again
            return PermanentLLMError(f"{what} to {self.public_url}: {exc}")
        kind = "timed out" if exc.timed_out else "failed"
        reason = self._redact(str(exc)) or exc.cause
        # The summary counts causes: a reset, a truncated body and a timeout are different
        # troubles.
        return TransientLLMError(f"{what} to {self.public_url} {kind}: {reason}",
                                 cause=exc.cause)

    # --- protocol ---------------------------------------------------------------------------

    async def check(self) -> None:
        try:
            response = await self._http().request("GET", f"{self.base_url}/models")
        except HttpTransportError as exc:
            reason = self._redact(str(exc)) or type(exc).__name__
            raise BackendError(
                f"cannot reach the LLM server at {self.public_url}: {reason}"
            ) from exc
        if response.status in (401, 403):
            raise self._auth_error()
        if response.status == 404 and self.model is not None:
            return  # reachable; some servers simply have no model list
        if response.status != 200:
            raise BackendError(
                f"the LLM server at {self.public_url} answered GET /models with HTTP "
                f"{response.status}: {self._server_message(response)}"
            )
        try:
            data = response.json().get("data") or []
            ids = [str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")]
        except (ValueError, AttributeError, TypeError) as exc:
            raise BackendError(
                f"the LLM server at {self.public_url} sent an unreadable model list"
            ) from exc
        if self.model is None:
            if not ids:
                raise BackendError(
                    f"the LLM server at {self.public_url} lists no models; pass model=…"
                )
            self.model = ids[0]
        elif ids and self.model not in ids:
            log.warning(
                "model %r is not in the list served at %s (%s)",
                self.model,
                self.public_url,
                ", ".join(ids[:5]),
            )
        entry = next((m for m in data if isinstance(m, dict) and m.get("id") == self.model),
                     None)
        await self._find_context_length(entry)

    @property
    def root_url(self) -> str:
        """The server root (tokenize and props endpoints live beside /v1, not under it)."""
        return self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url

    async def _find_context_length(self, entry: dict[str, Any] | None) -> None:
        """vLLM and SGLang list ``max_model_len`` per model; llama.cpp's C++ server lists
        ``meta.n_ctx_train`` there and its runtime n_ctx in GET /props. llama-cpp-python's
        server states its n_ctx nowhere (only in a context_length_exceeded refusal)."""
        if not isinstance(entry, dict):
            return
        found = entry.get("max_model_len") or entry.get("context_length")
        if isinstance(found, int) and found > 0:
            self._context_length, self.context_length_source = found, "server:max_model_len"
            return
        if not isinstance(entry.get("meta"), dict):
            return  # no llama.cpp server: no props endpoint to ask
        try:
            response = await self._http().request("GET", f"{self.root_url}/props")
            props = response.json() if response.status == 200 else {}
        except (HttpTransportError, ValueError):
            return
        settings = props.get("default_generation_settings") if isinstance(props, dict) else None
        n_ctx = (settings or {}).get("n_ctx") if isinstance(settings, dict) else None
        if isinstance(n_ctx, int) and n_ctx > 0:
            self._context_length, self.context_length_source = n_ctx, "server:/props n_ctx"

    def _find_tokenizer(self) -> None:
        """Ask each known tokenize endpoint once (on the first count, not in ``check()``:
        a run that never counts sends nothing more)."""
        self._probed = True
        for path, key in _TOKENIZE_ENDPOINTS:
            try:
                count = self._token_count(self._post_sync(path, self._tokenize_body(
                    key, "Hello world")))
            except Exception:  # noqa: BLE001 - any failure means: not this endpoint
                continue
            if count is not None:
                self._tokenize = (path, key)
                return

    def _post_sync(self, path: str, body: dict[str, Any]) -> HttpResponse:
        import httpx

        if self._sync_http is None:
            key = self._key.get()
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            self._sync_http = httpx.Client(timeout=self.timeout_s, headers=headers)
        raw = self._sync_http.post(f"{self.root_url}{path}", json=body)
        return HttpResponse(raw.status_code, raw.headers, raw.content, raw.reason_phrase)

    def _tokenize_body(self, key: str, text: str) -> dict[str, Any]:
        body: dict[str, Any] = {key: text}
        if self.model is not None and key != "content":
            body["model"] = self.model
        return body

    @staticmethod
    def _token_count(response: HttpResponse) -> int | None:
        if response.status != 200:
            return None
        try:
            body = response.json()
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        if isinstance(body.get("count"), int):
            return int(body["count"])
        tokens = body.get("tokens")
        return len(tokens) if isinstance(tokens, list) else None

    def _body(self, request: LLMRequest, seed: int | None, mode: str) -> dict[str, Any]:
        params = request.params
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.presence_penalty:
            body["presence_penalty"] = params.presence_penalty
        if seed is not None:
            body["seed"] = seed
        if request.messages is not None:
            body["messages"] = request.messages
        else:
            body["prompt"] = request.prompt
        if request.tools:
            body["tools"] = request.tools
            if request.tool_choice is not None:
                body["tool_choice"] = request.tool_choice
            if request.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = request.parallel_tool_calls
        if request.logprobs is not None:
            if request.messages is not None:  # chat: a flag and a count
                body["logprobs"] = True
                body["top_logprobs"] = request.logprobs
            else:  # /v1/completions: the count; echo for the prompt's own tokens
                body["logprobs"] = request.logprobs
                body["echo"] = request.echo
        schema = request.json_schema
        if schema is not None and mode == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": schema, "strict": True},
            }
        elif schema is not None and mode == "json_object":
            body["response_format"] = {"type": "json_object", "schema": schema}
        return body

    async def complete(self, request: LLMRequest, *, seed: int | None) -> RawCompletion:
        if self.model is None:
            await self.check()
        chat = request.messages is not None
        url = f"{self.base_url}/{'chat/completions' if chat else 'completions'}"
        mode = self._wire_mode
        response = await self._post(url, self._body(request, seed, mode))
        if (
            self.structured == "auto"
            and mode == "json_schema"
            and request.json_schema is not None
            and self._rejects_response_format(response)
        ):
            # Protocol negotiation, not a retry: the server does not know this request shape.
            log.info("%s rejects json_schema response_format; using json_object", self.public_url)
            self._wire_mode = "json_object"
            response = await self._post(url, self._body(request, seed, "json_object"))
        return self._parse(response, chat)

    @staticmethod
    def _rejects_response_format(response: HttpResponse) -> bool:
        # llama-cpp-python's server reports its request-validation error as HTTP 500
        # ("loc: body.response_format.type ... Input should be 'text' or 'json_object'").
        if response.status not in (400, 422, 500):
            return False
        return "response_format" in response.text.lower()

    async def _post(self, url: str, body: dict[str, Any]) -> HttpResponse:
        try:
            return await self._http().request("POST", url, body)
        except HttpTransportError as exc:
            raise self._transport_error(exc, "request") from exc

    def _parse(self, response: HttpResponse, chat: bool) -> RawCompletion:
        status = response.status
        if status in (401, 403):
            raise self._auth_error()
        if status in _TRANSIENT_STATUS or status >= 500:
            raise TransientLLMError(
                f"HTTP {status} from {self.public_url}: {self._server_message(response)}",
                status=status,
                retry_after=parse_retry_after(response.headers),
            )
        if not 200 <= status < 300:
            self._learn_context_length(response)
            raise PermanentLLMError(
                f"HTTP {status} from {self.public_url}: {self._server_message(response)}",
                status=status,
            )
        try:
            body = response.json()
            choice = body["choices"][0]
            if chat:
                message = choice["message"]
                text = message.get("content") or ""
                tool_calls = calls_in_message(message) or None
                # vLLM/SGLang reasoning parsers move the thinking out of content; put it back in
                # the <think> form so the client's one reasoning splitter sees every backend alike.
                reasoning = message.get("reasoning_content") or message.get("reasoning")
                if isinstance(reasoning, str) and reasoning:
                    text = f"<think>{reasoning}</think>{text}"
            else:
                text = choice.get("text") or ""
                tool_calls = None
            usage = body.get("usage") or {}
            return RawCompletion(
                text=str(text),
                finish_reason=choice.get("finish_reason"),
                usage=Usage(
                    prompt_tokens=int(usage.get("prompt_tokens") or 0),
                    completion_tokens=int(usage.get("completion_tokens") or 0),
                ),
                model=str(body.get("model") or self.model),
                tool_calls=tool_calls,
                logprobs=normalize_logprobs(choice.get("logprobs")),
            )
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            snippet = self._redact(response.text[:120])
            raise TransientLLMError(
                f"invalid response body from {self.public_url} (HTTP {status}): {snippet!r}",
                status=status, cause="invalid_body",
            ) from exc

    def _learn_context_length(self, response: HttpResponse) -> None:
        found = _CONTEXT_IN_ERROR.search(response.text)
        if found and (self._context_length is None or int(found[1]) < self._context_length):
            self._context_length = int(found[1])
            self.context_length_source = "server:context_length_exceeded"
            log.warning("%s refused a prompt: its context window is %s tokens; packing to "
                        "that from now on", self.public_url, found[1])

    @property
    def context_length(self) -> int | None:
        return self._context_length

    def tokenizer_name(self) -> str | None:
        if not self._probed:
            self._find_tokenizer()
        return f"server:{self._tokenize[0]}" if self._tokenize is not None else None

    def count_tokens(self, text: str) -> int:
        """The server's tokenizer (found by ``check()``), else an estimate. Synchronous for
        the packers' sake: a blocking loopback call; the client caches counts by text."""
        if self._tokenize is None:
            return super().count_tokens(text)
        import httpx

        path, field = self._tokenize
        try:
            response = self._post_sync(path, self._tokenize_body(field, text))
        except httpx.HTTPError as exc:
            raise TransientLLMError(f"tokenize at {self.public_url} failed: {exc}") from exc
        count = self._token_count(response)
        if count is None:
            raise TransientLLMError(f"tokenize at {self.public_url} answered HTTP "
                                    f"{response.status}", status=response.status)
        return count

    async def count_tokens_async(self, text: str) -> int:
        if self._tokenize is None:
            return super().count_tokens(text)
        path, field = self._tokenize
        try:
            response = await self._http().request("POST", f"{self.root_url}{path}",
                                                  self._tokenize_body(field, text))
        except HttpTransportError as exc:
            raise self._transport_error(exc, "tokenize") from exc
        count = self._token_count(response)
        if count is None:
            raise TransientLLMError(f"tokenize at {self.public_url} answered HTTP "
                                    f"{response.status}", status=response.status)
        return count

    async def aclose(self) -> None:
        if self._sync_http is not None:
            self._sync_http.close()
            self._sync_http = None
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.aclose()
