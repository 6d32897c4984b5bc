"""Prompt templates: Jinja files next to their method; their hash enters the cache key.

A template may define ``{% block system %}`` and ``{% block user %}``; without a ``user`` block
the whole rendered text is the user message. Undefined variables are errors (StrictUndefined),
so a template that names a column the record lacks fails that item with a clear message.

A recipe's template is code from whoever wrote the recipe, so it renders in Jinja's immutable
sandbox (no ``__globals__``, no ``os.environ``, no mutating lists or dicts) under limits: at
most :data:`RENDER_TIMEOUT_S` seconds (checked at every loop step and call), at most
:data:`MAX_RENDER_CHARS` characters of output or of any one value the template builds, and
``range`` of at most ``jinja2.sandbox.MAX_RANGE`` items. A breach raises
:class:`TemplateLimitError` naming the template: that item fails, the run goes on.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import new_context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from synthloom.core.errors import RecipeError
from synthloom.core.fingerprint import text_hash

# Template files stay next to their method: look them up from the package root.
PACKAGE_DIR = Path(__file__).resolve().parents[1]
METHODS_DIR = PACKAGE_DIR / "methods"

#: Wall-clock limit of one render (a prompt renders in microseconds; a loop over
#: ``range(10**5)`` nested three deep would take hours).
RENDER_TIMEOUT_S = 5.0
#: Largest rendered prompt, and largest string or list one expression may build.
MAX_RENDER_CHARS = 16_000_000
#: A ``%`` or ``str.format`` width/precision this long (or ``*``) could allocate gigabytes.
_HUGE_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d{8,})|%[^%a-zA-Z]*\.(?:\*|\d{8,})")
_HUGE_FORMAT = re.compile(r"\{[^{}]*:[^{}]*\d{8,}[^{}]*\}")


class TemplateLimitError(SecurityError):
    """A template broke a render limit (time, size) or the sandbox."""


@dataclass
class _Budget:
    deadline: float
    steps: int = 0

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(f"rendering took over {RENDER_TIMEOUT_S:g}s")


_BUDGET: ContextVar[_Budget | None] = ContextVar("synthloom_template_budget", default=None)


def _tick() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.check()


def _sized(value: Any) -> Any:
    if isinstance(value, str | list | tuple | bytes) and len(value) > MAX_RENDER_CHARS:
        raise TemplateLimitError(f"a value of {len(value)} items/characters "
                                 f"(the limit is {MAX_RENDER_CHARS})")
    return value


def _check_format(fmt: Any, pattern: re.Pattern[str]) -> None:
    if isinstance(fmt, str) and pattern.search(fmt):
        raise TemplateLimitError("a format width or precision of 8+ digits (or '*')")


def _length(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple | bytes) else 0


class _GuardedCodeGenerator(CodeGenerator):
    """Compiles every ``{% for %}`` over ``environment.guard_iter(...)`` and every ``~``
    concatenation through ``environment.guard_size(...)``: a loop cannot run past the render
    deadline, and repeated doubling cannot build gigabytes."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        guarded = nodes.Call(nodes.EnvironmentAttribute("guard_iter"), [node.iter], [], None,
                             None, lineno=node.iter.lineno)
        super().visit_For(nodes.For(node.target, guarded, node.body, node.else_, node.test,
                                    node.recursive, lineno=node.lineno), frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.guard_size(")
        super().visit_Concat(node, frame)
        self.write(")")


class _PromptSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox plus the render limits (module docstring)."""

    code_generator_class = _GuardedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name in ("center", "indent"):  # width arguments allocate before any check
            self.filters[name] = _width_capped(self.filters[name])
        self.filters["join"] = _join_capped(self.filters["join"])
        self.filters["format"] = _format_capped(self.filters["format"])

    @staticmethod
    def guard_iter(iterable: Iterable[Any]) -> Iterator[Any]:
        budget = _BUDGET.get()
        if budget is None:
            yield from iterable
            return
        for item in iterable:
            budget.steps += 1
            if not budget.steps & 255:
                budget.check()
            yield item

    @staticmethod
    def guard_size(value: Any) -> Any:
        return _sized(value)

    def call(__self, __context: Any, __obj: Any, *args: Any,  # noqa: N805 - Jinja's signature
             **kwargs: Any) -> Any:
        _tick()
        for arg in (*args, *kwargs.values()):
            if isinstance(arg, int) and not isinstance(arg, bool) and arg > MAX_RENDER_CHARS:
                raise TemplateLimitError(f"a call with argument {arg} (the limit is "
                                         f"{MAX_RENDER_CHARS})")
        wrapped = getattr(__obj, "__wrapped__", None)  # the sandbox's str.format wrapper
        _check_format(getattr(wrapped, "__self__", None), _HUGE_FORMAT)
        return _sized(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if (op == "**" and isinstance(left, int) and isinstance(right, int)
                and abs(right) * max(abs(left).bit_length(), 1) > 1_000_000):
            raise TemplateLimitError(f"a power of over a million bits ({right} as exponent)")
        if op == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(times, int) and _length(seq) * times > MAX_RENDER_CHARS:
                    raise TemplateLimitError(f"repeating a value {times} times")
        if op == "%":
            _check_format(left, _HUGE_PERCENT)
        return _sized(super().call_binop(context, op, left, right))


def _width_capped(filter_func: Any) -> Any:
    def capped(value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> Any:
        if isinstance(width, int) and width > MAX_RENDER_CHARS:
            raise TemplateLimitError(f"a width of {width}")
        return filter_func(value, width, *args, **kwargs)
    return capped


def _join_capped(filter_func: Any) -> Any:
    @jinja2.pass_eval_context
    def capped(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
        if attribute is None and not isinstance(value, str):
            items = list(value)
            total = sum(len(v) if isinstance(v, str) else 32 for v in items)
            if total + len(d) * len(items) > MAX_RENDER_CHARS:
                raise TemplateLimitError(f"joining {len(items)} values of {total} characters")
            value = items
        return filter_func(eval_ctx, value, d, attribute)
    return capped


def _format_capped(filter_func: Any) -> Any:
    def capped(value: Any, *args: Any, **kwargs: Any) -> str:
        _check_format(value, _HUGE_PERCENT)
        return filter_func(value, *args, **kwargs)
    return capped


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
        budget = _Budget(time.monotonic() + RENDER_TIMEOUT_S)
        token = _BUDGET.set(budget)
        try:
            parts, size = [], 0
            for part in render_func(ctx):
                size += len(part)
                if size > MAX_RENDER_CHARS:
                    raise TemplateLimitError(f"output over {MAX_RENDER_CHARS} characters")
                budget.check()
                parts.append(part)
            return "".join(parts)
        except SecurityError as exc:  # TemplateLimitError too: name the template, not Jinja
            raise TemplateLimitError(f"template {self.name!r}: {exc}") from None
        except Exception:
            tmpl.environment.handle_exception()  # re-raises with the template's line numbers
            raise  # not reached
        finally:
            _BUDGET.reset(token)

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
    env = _PromptSandbox(
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
