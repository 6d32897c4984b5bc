"""`synthloom steps`: every registered step type listed with its kind; one type's settings with
their defaults; an unknown type is a one-line error with exit code 2."""

from __future__ import annotations

from typer.testing import CliRunner

from synthloom.cli import app
from synthloom.core.registry import step_types


def test_steps_lists_every_registered_type() -> None:
    result = CliRunner().invoke(app, ["steps"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in step_types():
        assert name in result.output
    assert len(step_types()) >= 90


def test_one_step_shows_its_settings_and_defaults() -> None:
    result = CliRunner().invoke(app, ["steps", "generate"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "uses the LLM" in result.output and "generic LLM steps" in result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert "required" in lines["template"] and "512" in lines["max_tokens"]
    assert "schema" in lines  # the alias users write, not the field name
    assert "context" not in lines  # wiring settings are left out


def test_unknown_step_type_is_a_clear_error() -> None:
    result = CliRunner().invoke(app, ["steps", "no_such_step"])
    assert result.exit_code == 2
    assert "unknown step type 'no_such_step'" in result.output


def test_one_step_shows_each_settings_description() -> None:
    """From ``Field(description=...)`` (StepConfig's ``model``) or, as a fallback, the ``#:``
    comment above the field (``rows``' settings)."""
    result = CliRunner().invoke(app, ["steps", "rows"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    assert "description" in result.output and "Rename fields: {old: new}." in result.output
    result = CliRunner().invoke(app, ["steps", "generate"], env={"COLUMNS": "250"})
    assert "The named model (recipe ``models:``) this step calls" in result.output


def test_field_comments_read_the_class_and_its_bases() -> None:
    from pydantic import Field

    from synthloom.cli import _field_comments
    from synthloom.core.steps import StepConfig

    class Base(StepConfig):
        #: Said above a, over
        #: two lines.
        a: int = 1
        b: int = Field(default=2, description="in the field")

    class Child(Base):
        #: The child's own.
        c: str = ""

    assert _field_comments(Child) == {"a": "Said above a, over two lines.", "c": "The child's own."}
    assert Child.model_fields["b"].description == "in the field"
