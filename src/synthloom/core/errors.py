"""Errors that the CLI turns into one clear line (no traceback unless --debug)."""

from __future__ import annotations


class SynthloomError(Exception):
    """Base class: a user-facing error whose message is the whole story."""

    exit_code = 2


class RecipeError(SynthloomError):
    """The recipe (YAML or Python) is invalid: unknown key, wrong type, missing file."""


class BackendError(SynthloomError):
    """The LLM backend cannot be used (unreachable server, missing model, bad key)."""


class BudgetExhausted(SynthloomError):
    """The run's token budget is spent; the run stops cleanly and can be resumed."""

    exit_code = 3
