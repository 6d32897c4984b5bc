"""Prompt templates: Jinja files next to their method; their hash enters the cache key.

A template may define ``{% block system %}`` and ``{% block user %}``; without a ``user`` block
the whole rendered text is the user message. Undefined variables are errors (StrictUndefined),
so a template that names a column the record lacks fails that item with a clear message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.runtime import new_context

from synthloom.core.errors import RecipeError
from synthloom.core.fingerprint import text_hash

METHODS_DIR = Path(__file__).resolve().parent
PACKAGE_DIR = METHODS_DIR.parent


@dataclass
class PromptTemplate:
    name: str
    source: str
    template: jinja2.Template
    variables: frozenset[str]
    #: The template's globals as a plain dict, merged once. Jinja's own ``render`` copies its
    #: globals ChainMap into every new context, which was ~40 % of the engine's CPU per LLM
    #: request (benchmarks/orchestration.py).
    _globals: dict[str, Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._globals = dict(self.template.globals)

    @property
    def hash(self) -> str:
        return text_hash(self.source)

    def _render(self, render_func: Any, variables: dict[str, Any]) -> str:
        tmpl = self.template
        ctx = new_context(tmpl.environment, tmpl.name, tmpl.blocks,
                          {**self._globals, **variables}, shared=True)
        try:
            return "".join(render_func(ctx))
        except Exception:
            tmpl.environment.handle_exception()  # re-raises with the template's line numbers
            raise  # not reached

    def render_messages(self, variables: dict[str, Any]) -> list[dict[str, str]]:
        blocks = self.template.blocks
        messages = []
        if "system" in blocks:
            system = self._render(blocks["system"], variables).strip()
            if system:
                messages.append({"role": "system", "content": system})
        render = blocks.get("user", self.template.root_render_func)
        messages.append({"role": "user", "content": self._render(render, variables).strip()})
        return messages

    def render_text(self, variables: dict[str, Any]) -> str:
        return self._render(self.template.root_render_func, variables)


def load_template(name: str, recipe_dir: Path | None = None) -> PromptTemplate:
    """A template file path, or ``name`` relative to the recipe's folder, then to
    ``synthloom/methods/``, then to the package root (``quality/prompts/judge.jinja``)."""
    as_file = Path(name).expanduser()
    if as_file.is_file():
        recipe_dir, name = as_file.resolve().parent, as_file.name
    search = [str(p) for p in (recipe_dir, METHODS_DIR, PACKAGE_DIR) if p is not None]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(search),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,  # prompts are plain text, not HTML
    )
    try:
        source, _, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
        template = env.get_template(name)
    except jinja2.TemplateNotFound:
        raise RecipeError(f"template {name!r} not found in {search}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise RecipeError(f"template {name!r} line {exc.lineno}: {exc.message}") from None
    variables = frozenset(meta.find_undeclared_variables(env.parse(source)))
    return PromptTemplate(name=name, source=source, template=template, variables=variables)
