"""Reasoning split, JSON extraction and repair, schema validation, repair prompts."""

from __future__ import annotations

import copy
import json

import pytest

from synthloom.llm.structured import (
    extract_json,
    parse_structured,
    repair_messages,
    repair_prompt,
    schema_instructions,
    split_reasoning,
    validate,
)

ITEMS_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "integer"}},
                "required": ["name"],
            },
        },
    },
    "required": ["title", "items"],
}

# --- split_reasoning --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "answer", "reasoning"),
    [
        ("<think>plan it</think>\nThe answer.", "The answer.", "plan it"),
        ("\n  <Thinking>\nstep 1\n</THINKING>  42 ", "42", "step 1"),
        ('<reasoning>why</reasoning>{"a": 1}', '{"a": 1}', "why"),
        ("<think>one</think>A <think>two</think>B", "A B", "one\n\ntwo"),
        ("<think>cut off while thinki", "", "cut off while thinki"),
        (
            "opening tag was in the prompt\n</think>\n\nFinal.",
            "Final.",
            "opening tag was in the prompt",
        ),
    ],
)
def test_split_reasoning_forms(text: str, answer: str, reasoning: str) -> None:
    assert split_reasoning(text) == (answer, reasoning)


def test_split_reasoning_without_tags_returns_text_unchanged() -> None:
    text = "  just an answer with <b>html</b>\n"
    assert split_reasoning(text) == (text, None)


def test_split_reasoning_empty_block_is_no_reasoning() -> None:
    assert split_reasoning("<think>\n\n</think>\n\nHello") == ("Hello", None)


# --- extract_json -----------------------------------------------------------------------------


def test_extract_multiline_fenced_json() -> None:
    text = (
        'Here is the result:\n```json\n{\n  "title": "x}",\n  "items": [\n'
        '    {"name": 1},\n    {"name": 2}\n  ]\n}\n```\nHope this helps {really}.'
    )
    assert extract_json(text) == {"title": "x}", "items": [{"name": 1}, {"name": 2}]}


def test_extract_plain_fence_without_language() -> None:
    assert extract_json("```\n[1,\n 2,\n 3]\n```") == [1, 2, 3]


def test_extract_json_with_prose_around_it() -> None:
    text = 'Sure! {"a": {"b": "brace } in string"}, "c": [1, 2]} Let me know.'
    assert extract_json(text) == {"a": {"b": "brace } in string"}, "c": [1, 2]}


def test_extract_skips_prose_braces_that_are_not_json() -> None:
    assert extract_json('Use {curly} braces. Answer: {"ok": true}') == {"ok": True}


def test_extract_bare_scalar() -> None:
    assert extract_json(" 42 ") == 42


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1, "b": [1, 2,],}', {"a": 1, "b": [1, 2]}),
        ("{'a': 'single', 'b': 2}", {"a": "single", "b": 2}),
        ('Result: {"a": 1, "b": {"c": "trunc', {"a": 1, "b": {"c": "trunc"}}),
        ('```json\n{"items": [{"name": 1}, {"name": 2\n', {"items": [{"name": 1}, {"name": 2}]}),
    ],
)
def test_extract_repairs_broken_json(text: str, expected: object) -> None:
    assert extract_json(text) == expected


@pytest.mark.parametrize("text", ["I am sorry, I cannot help with that.", "", "   \n"])
def test_extract_hopeless_text_raises(text: str) -> None:
    with pytest.raises(ValueError, match="no JSON"):
        extract_json(text)


# --- validate / parse_structured --------------------------------------------------------------


def test_validate_reports_json_paths_sorted() -> None:
    value = {"title": 3, "items": [{"name": 1}, {"name": "x"}, {}]}
    assert validate(value, ITEMS_SCHEMA) == [
        "$.items[1].name: 'x' is not of type 'integer'",
        "$.items[2]: 'name' is a required property",
        "$.title: 3 is not of type 'string'",
    ]


def test_validate_valid_value_and_error_cap() -> None:
    assert validate({"title": "t", "items": []}, ITEMS_SCHEMA) == []
    many = {"type": "array", "items": {"type": "integer"}}
    errors = validate([str(i) for i in range(25)], many)
    assert len(errors) == 10
    assert errors == sorted(errors)


def test_validate_uses_the_declared_draft() -> None:
    # Draft 4 has boolean exclusiveMaximum; under 2020-12 this schema would be rejected.
    schema = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "number",
        "maximum": 5,
        "exclusiveMaximum": True,
    }
    assert validate(4, schema) == []
    assert len(validate(5, schema)) == 1


def test_parse_structured_valid_and_invalid() -> None:
    value, errors = parse_structured(
        '```json\n{"title": "t", "items": [{"name": 1}]}\n```', ITEMS_SCHEMA
    )
    assert value == {"title": "t", "items": [{"name": 1}]}
    assert errors == []
    value, errors = parse_structured('{"title": "t"}', ITEMS_SCHEMA)
    assert value == {"title": "t"}
    assert errors == ["$: 'items' is a required property"]


def test_parse_structured_unwraps_one_element_list_for_object_schema() -> None:
    value, errors = parse_structured('[{"title": "t", "items": []}]', ITEMS_SCHEMA)
    assert value == {"title": "t", "items": []}
    assert errors == []
    # An array schema keeps the list as it is.
    value, errors = parse_structured('[{"a": 1}]', {"type": "array"})
    assert value == [{"a": 1}]
    assert errors == []


def test_parse_structured_reports_extraction_failure() -> None:
    value, errors = parse_structured("no json here", ITEMS_SCHEMA)
    assert value is None
    assert len(errors) == 1 and errors[0].startswith("no JSON")


# --- prompts ----------------------------------------------------------------------------------


def test_schema_instructions_embed_compact_schema() -> None:
    text = schema_instructions(ITEMS_SCHEMA)
    compact = json.dumps(ITEMS_SCHEMA, separators=(",", ":"))
    assert compact in text
    assert "only a JSON object" in text


def test_repair_messages_appends_without_mutating_input() -> None:
    messages = [{"role": "system", "content": "be terse"}, {"role": "user", "content": "go"}]
    before = copy.deepcopy(messages)
    bad = "x" * 5000
    out = repair_messages(messages, bad, ["$.title: 3 is not of type 'string'"], ITEMS_SCHEMA)
    assert messages == before
    assert out[:2] == before and out[0] is not messages[0]
    assert [m["role"] for m in out[2:]] == ["assistant", "user"]
    assert out[2]["content"].startswith("x" * 2000)
    assert "x" * 2001 not in out[2]["content"]
    assert "- $.title: 3 is not of type 'string'" in out[3]["content"]
    assert json.dumps(ITEMS_SCHEMA, separators=(",", ":")) in out[3]["content"]


def test_repair_prompt_contains_prompt_output_and_errors() -> None:
    text = repair_prompt("Make a list.", "{oops", ["no JSON found"], ITEMS_SCHEMA)
    assert text.startswith("Make a list.")
    assert "{oops" in text
    assert "- no JSON found" in text
    assert text.index("{oops") < text.index("- no JSON found")
