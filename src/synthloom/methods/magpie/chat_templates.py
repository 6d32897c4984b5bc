"""Pre-query templates for Magpie, taken from a chat template (the model's own, or a preset).

Magpie (Xu et al. 2024, arXiv 2406.08464) feeds an aligned model only the part of its chat
template that comes *before* a user message (for ChatML ``<|im_start|>user\\n``). The model
then writes a user query itself. Rather than hard-coding that prefix per model, we render the
chat template (HF-style Jinja, as stored in a GGUF's ``tokenizer.chat_template``) with a
sentinel as the user message and cut at the sentinel: everything before it is the pre-query
template; what follows it (``<|im_end|>``) ends a user turn and becomes a stop string.
The same rendering with the conversation so far in front gives the pre-query prompt of
later turns (Magpie-MT).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from synthloom.core.errors import RecipeError
from synthloom.core.fingerprint import text_hash

PRESETS_DIR = Path(__file__).resolve().parent / "prompts" / "presets"
#: Named presets (prompts/presets/NAME.jinja); "auto" means the model's own template.
PRESETS = tuple(sorted(p.stem for p in PRESETS_DIR.glob("*.jinja")))

# Never produced by a model nor changed by ``trim``: marks where the user's text would go.
_QUERY = "MAGPIE_QUERY_SENTINEL_7f3a"
_REPLY = "MAGPIE_REPLY_SENTINEL_c91e"


class _TemplateError(Exception):
    pass


def _raise(message: str) -> Any:
    raise _TemplateError(message)


@dataclass(frozen=True)
class ChatTemplate:
    """A chat template and what Magpie needs from it."""

    #: "chatml", "llama3", ... or "model" (the GGUF's own tokenizer.chat_template).
    name: str
    source: str

    @property
    def hash(self) -> str:
        return text_hash(self.source)

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        try:
            template = env.from_string(self.source)
            # BOS is left out: llama.cpp and HF tokenizers add it when they tokenize the prompt.
            return template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                   bos_token="", eos_token="", tools=None)
        except _TemplateError as exc:
            raise RecipeError(f"chat template {self.name!r}: {exc}") from None
        except jinja2.TemplateError as exc:
            raise RecipeError(f"chat template {self.name!r} does not render: {exc}") from None

    def pre_query(self, history: list[dict[str, str]]) -> str:
        """The prompt that makes the model write the next user message after ``history``."""
        text = self.render([*history, {"role": "user", "content": _QUERY}])
        if _QUERY not in text:
            raise RecipeError(f"chat template {self.name!r} drops the user message; "
                              "cannot find its pre-query prefix")
        return text.split(_QUERY, 1)[0]

    def stops(self) -> list[str]:
        """Markers that end a user turn or start another one: the query must stop there."""
        user = self.render([{"role": "user", "content": _QUERY}])
        end = user.split(_QUERY, 1)[1].strip()
        pair = self.render([{"role": "user", "content": _QUERY},
                            {"role": "assistant", "content": _REPLY}])
        between = pair.split(_QUERY, 1)[1].split(_REPLY, 1)[0]
        header = between.strip()
        if end and header.startswith(end):
            header = header[len(end):].strip()
        user_header = user.split(_QUERY, 1)[0]
        if end and end in user_header:
            user_header = user_header.rsplit(end, 1)[1]
        found: list[str] = []
        for marker in (end, header, user_header.strip()):
            if marker and marker not in found:
                found.append(marker)
        return found


def load_chat_template(name: str, backend: Any | None) -> ChatTemplate:
    """``auto``: the backend's model's own chat template; otherwise a preset or a file path."""
    if name == "auto":
        getter = getattr(backend, "chat_template", None)
        source = getter() if callable(getter) else None
        if not source:
            kind = getattr(backend, "kind", type(backend).__name__)
            raise RecipeError(
                f"magpie template 'auto' needs the model's chat template, and the {kind} "
                f"backend does not expose one (only a GGUF on the llamacpp backend does); "
                f"set the template, e.g. --set template=chatml (presets: {', '.join(PRESETS)})")
        return ChatTemplate(name="model", source=source)
    if name in PRESETS:
        return ChatTemplate(name=name, source=(PRESETS_DIR / f"{name}.jinja").read_text())
    path = Path(name).expanduser()
    if path.is_file():  # an HF-style chat template file of the user's own
        return ChatTemplate(name=path.name, source=path.read_text(encoding="utf-8"))
    raise RecipeError(f"unknown magpie template {name!r}: use auto, a preset "
                      f"({', '.join(PRESETS)}) or a Jinja chat-template file")
