"""Every setting of a shipped step type is described (issue 21 item 6): ``synthloom steps TYPE``
prints each field's ``Field(description=...)`` or, failing that, the ``#:`` comment directly above
it in the Config class (``synthloom.cli._field_comments``). A new setting without either fails
here with its step type, field and module."""

from __future__ import annotations

from pydantic import Field

from synthloom.cli import _field_comments
from synthloom.core.registry import step_types
from synthloom.core.steps import StepConfig

#: The wiring every step has (the same meaning everywhere, described once in docs/recipes.md).
WIRING = ("name", "input", "context")


def _undescribed() -> list[str]:
    missing = []
    for type_name, cls in sorted(step_types().items()):
        if not cls.__module__.startswith("synthloom."):
            continue  # a test's or a plugin's step, not a shipped one
        comments = _field_comments(cls.Config)
        for field_name, field in cls.Config.model_fields.items():
            if field_name in WIRING or (field_name == "model" and not cls.uses_llm):
                continue
            if not (field.description or comments.get(field_name)):
                missing.append(f"{type_name}.{field_name} ({cls.__module__})")
    return missing


def test_every_setting_of_a_shipped_step_is_described() -> None:
    missing = _undescribed()
    assert not missing, (
        f"{len(missing)} step settings have no description (write a '#:' comment directly above "
        "the field, or Field(description=...)):\n  " + "\n  ".join(missing))


def test_a_comment_directly_above_a_field_describes_it_and_a_description_wins() -> None:
    class Example(StepConfig):
        #: Words per chunk,
        #: counted by whitespace.
        words: int = 10
        # an ordinary comment is no description
        plain: int = 1
        said: int = Field(default=2, description="From Field.")

    comments = _field_comments(Example)
    assert comments["words"] == "Words per chunk, counted by whitespace."
    assert "plain" not in comments and "said" not in comments
    assert Example.model_fields["said"].description == "From Field."
