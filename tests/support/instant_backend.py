"""InstantSchemaBackend: a scripted test double that answers any recipe at once (no model).

There is no model behind it: every answer is a pure function of the request and the seed, built
in microseconds, so a recipe can run on thousands of items in a test. It claims JSON-schema
support (``supports_json_schema = True``), so the client passes ``request.json_schema`` through
untouched (no schema instructions appended to the prompt) and validates what comes back:

* schema requests get an instance generated from the schema: every property of an object
  (``additionalProperties: false`` respected), arrays inside ``minItems``/``maxItems``, strings
  inside ``minLength``/``maxLength``, enums, numbers inside their bounds (integers for scores,
  drawn from the top of the range). String content follows the property's name: questions and
  instructions are varied questions about the prompt's material, answers/facts/passages are
  sentences copied from the material (so grounding checks can pass), names/entities/keywords
  are short phrases of the material, ``sql`` is a SELECT on a table the prompt names, ``call``
  calls the function the prompt defines.
* a union (``anyOf``/``oneOf``) gets one branch, drawn: a request with tools, which the client
  sends as the {tool_calls | content} union, gets tool calls of the offered tools (arguments
  from their schemas) or plain content.
* free-text requests get a varied multi-sentence answer plus what common parsers look for:
  ``The answer is N.`` / ``#### N`` for math, a ```python block for code and programs,
  ``Solution: ... Next request.`` / ``Instruction: ...`` for CAMEL agents, numbered lists for
  list continuations, ``Not Equal`` for Evol-Instruct's eliminator.

``code_share`` (default 1) is the share of code requests (by a hash of the prompt) answered
with code; the others get prose about code, as from a weak model, and are dropped before any
sandbox run: a test can bound how many programs the sandbox runs.

Content varies with a hash of the prompt and the seed, so dedup and novelty filters keep most
items. Verifying recipes (math, code, SQL, logic) still drop many items, with their reasons:
the point is that the engine finishes and counts everything at scale.
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

from synthloom.llm.types import LLMRequest, RawCompletion, Usage
from tests.support.scripted_backend import ScriptedTestBackend


def _split(words: str) -> tuple[str, ...]:
    return tuple(words.split())


# A vocabulary for the parts that must differ between items (novelty filters, ROUGE-L, MinHash):
# two answers drawn from it share few words, whatever the prompt.
_WORDS = _split(
    "harbour lantern orchard glacier meadow canyon compass ledger beacon quarry archive "
    "festival bakery workshop garden library market bridge river tunnel station museum "
    "ferry village castle island forest desert valley summit reef lagoon prairie delta "
    "spreadsheet budget invoice schedule inventory recipe playlist timetable itinerary "
    "telescope microscope battery circuit sensor engine turbine pump valve kettle oven "
    "violin drum choir poem novel chapter sketch mural sculpture photograph film script "
    "tomato lentil barley pepper ginger walnut apricot cherry mango olive basil saffron "
    "falcon otter badger heron salmon beetle spider dolphin walrus koala lynx pelican "
    "bicycle tractor canoe glider scooter trolley wagon sledge kayak yacht rocket drone "
    "ledger contract permit license warranty receipt voucher ticket passport diploma "
    "algorithm database compiler protocol network kernel cache server browser router "
    "fraction decimal percent ratio angle triangle polygon vector matrix integral "
    "climate rainfall drought monsoon tide erosion volcano earthquake aurora comet "
    "pottery weaving carpentry masonry tailoring welding plumbing roofing tiling")
_ADJ = _split("quiet bright careful rapid modest sturdy curious gentle precise hidden early "
        "late narrow broad seasonal local remote shared private urban rural coastal")
_VERBS = _split("compare explain describe plan estimate organise improve repair measure design "
          "summarise review schedule sort translate outline prepare test check rank")
_NAMES = _split("Alice Bruno Chen Dana Emeka Farah Goran Hana Ivan Julia Kofi Lena Mateo Nadia "
          "Omar Priya Quinn Rosa Sami Tara Umar Vera Wen Ximena Yusuf Zoe")

_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{2,}")
_PROPER = re.compile(r"\b[A-Z][a-z]{2,}(?:\s+[A-Z][a-z]{2,})?\b")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_HINT = re.compile(r"(?:answer is|answer:|####|hint:?|correct answer)\s*\$?\s*(-?\d+(?:\.\d+)?)",
                   re.IGNORECASE)
_TABLE = re.compile(r"CREATE TABLE\s+[\"`\[]?(\w+)", re.IGNORECASE)
_TABLE_LINE = re.compile(r"^\s*(?:table\s+)?[\"`]?(\w+)[\"`]?\s*\(", re.IGNORECASE | re.MULTILINE)
_DEF = re.compile(r"^def\s+([A-Za-z_]\w*)\s*\(([^)]*)\)", re.MULTILINE)
_QA_PREFIX = re.compile(r"^[\s#*-]*(?:Q|A|Question|Answer)\s*[:.]\s*", re.IGNORECASE)
_LIST_END = re.compile(r"(?:^|\n)\s*(\d+)\s?[.)]\s*$")
_STOP = frozenset(_split("the and for that with this from have will your what which when where there "
                  "their they them then than into about would could should been were also "
                  "only some more most such each other these those very just over under "
                  "write answer question reply json object field text passage following "
                  "given below above using must does make made like"))


def _hash(*parts: Any) -> int:
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def request_text(request: LLMRequest) -> str:
    """Everything the request says (system and user turns, or the raw prompt)."""
    if request.prompt is not None:
        return request.prompt
    return "\n\n".join(str(m.get("content", "")) for m in request.messages or [])


def _last_user(request: LLMRequest) -> str:
    if request.prompt is not None:
        return request.prompt
    users = [m for m in request.messages or [] if m.get("role") == "user"]
    return str((users or [{}])[-1].get("content", ""))


def _system(request: LLMRequest) -> str:
    return "\n".join(str(m.get("content", "")) for m in request.messages or []
                     if m.get("role") == "system")


class _Material:
    """What an answer is made of: the prompt's longest block (usually the document, chunk or
    question the template wraps), its sentences, phrases and numbers."""

    def __init__(self, text: str) -> None:
        quoted = text.split('"""')[1::2]  # templates wrap the document in triple quotes
        blocks = [b.strip() for b in (quoted or re.split(r"\n\s*\n|```", text)) if b.strip()]
        self.block = max(blocks, key=len) if blocks else text
        flat = " ".join(self.block.split())
        self.sentences = [s.strip() for s in _SENTENCE.split(flat)
                          if len(s.split()) >= 5 and not s.strip().startswith(("{", "["))]
        self.words = [w for w in _WORD.findall(flat) if w.lower() not in _STOP]
        self.proper = [p for p in _PROPER.findall(flat) if p.split()[0].lower() not in _STOP]
        self.numbers = _NUMBER.findall(flat)


class InstantSchemaBackend(ScriptedTestBackend):
    """Answers instantly and plausibly for any recipe; see the module docstring."""

    kind = "instant-test"
    supports_json_schema = True  # the client passes the schema through and validates our JSON
    supports_raw_prompt = True
    supports_logprobs = True  # scripted: see _logprobs
    default_concurrency = 64

    def __init__(self, *, name: str = "instant", code_share: float = 1.0) -> None:
        super().__init__(self._respond, name=name)
        #: Share of code requests answered with runnable-looking code (the rest get prose, as
        #: from a weak model): each such program costs a sandbox run (~0.1-0.3 s here).
        self.code_share = code_share

    # --- entry point ---------------------------------------------------------------------------

    async def complete(self, request: LLMRequest, *, seed: int | None) -> RawCompletion:
        # No bookkeeping per prompt (the parent's Counter of prompts grows with the run).
        self.calls += 1
        text = self._respond(request, seed)
        return RawCompletion(text=text, finish_reason="stop", model=self.model_id,
                             usage=Usage(len(request_text(request)) // 4, len(text) // 4),
                             logprobs=_logprobs(request, text, seed))

    def _respond(self, request: LLMRequest, seed: int | None) -> str:
        import orjson

        full = request_text(request)
        rng = random.Random(_hash(full, seed))
        material = _Material(_last_user(request))
        if request.json_schema is not None:
            writes_code = self._writes_code(full)
            value = _Instance(rng, material, full, writes_code).value(request.json_schema, "")
            return orjson.dumps(value).decode()
        return _free_text(request, full, material, rng, self._writes_code(full))

    def _writes_code(self, full: str) -> bool:
        # By the prompt alone: every sample of one request agrees.
        return _hash("code", full) % 10_000 < self.code_share * 10_000


# --- logprobs --------------------------------------------------------------------------------

_LP_TOKEN = re.compile(r"\s*\S+|\s+$")


def _logprobs(request: LLMRequest, text: str, seed: int | None) -> list[dict[str, Any]] | None:
    """Scripted token logprobs when asked (no model): whitespace-led words, each logprob a
    hash of the text so far (between -4 and 0), echoed prompt tokens first (the first one
    None, as llama.cpp echoes it); about one token in eight lists " [" among its top
    alternatives (Toolformer's call-opening token), so some positions pass a 0.05 cut."""
    if request.logprobs is None:
        return None
    words = (_LP_TOKEN.findall(request.prompt or "") if request.echo else []) + \
        _LP_TOKEN.findall(text)
    out: list[dict[str, Any]] = []
    at = 0
    for i, word in enumerate(words):
        at += len(word)
        h = _hash(word, at, seed)
        top = {word: -(h % 400) / 100}
        if request.logprobs and h % 8 == 0:
            top[" ["] = -((h >> 4) % 300) / 100
        out.append({"token": word, "logprob": None if i == 0 and request.echo
                    else -(h % 400) / 100, "top": top})
    return out


# --- free text -------------------------------------------------------------------------------


def _answer_number(full: str, material: _Material) -> str:
    """The number a math answer states: a hint the prompt gives, else the material's last
    number (the same for every sample of one question, so majority votes agree)."""
    hints = _HINT.findall(full)
    if hints:
        return hints[-1]
    return material.numbers[-1] if material.numbers else str(_hash(full) % 90 + 10)


def _sentence(rng: random.Random, material: _Material, words: int = 10) -> str:
    """A new sentence: a few of the material's words among vocabulary words."""
    picks = [rng.choice(_WORDS) for _ in range(words)]
    for i in range(0, words, 3):
        if material.words:
            picks[i] = rng.choice(material.words).lower()
    return (f"{rng.choice(_NAMES)} will {rng.choice(_VERBS)} the {rng.choice(_ADJ)} "
            + " ".join(picks) + ".")


def _prose(rng: random.Random, material: _Material, sentences: int = 3) -> str:
    out = []
    if material.sentences:
        out.append(rng.choice(material.sentences))
    out.extend(_sentence(rng, material) for _ in range(sentences))
    return " ".join(out)


def _python(rng: random.Random, full: str, number: str) -> str:
    found = _DEF.findall(full)
    name, params = found[-1] if found else (f"{rng.choice(_VERBS)}_{rng.choice(_WORDS)}", "x")
    arity = len([p for p in params.split(",") if p.strip() and "=" not in p and "*" not in p])
    args = ", ".join(str(i + 1) for i in range(arity))
    body = "    return len(str(locals()))\n" if arity else "    return 1\n"
    return (f"```python\ndef {name}({params}):\n    \"\"\"{_sentence(rng, _Material(''), 5)}\"\"\"\n"
            f"{body}\n\nresult = {number}\nprint(result)\n```\n\n"
            f"```python\nassert {name}({args}) is not None\nassert isinstance({name}({args}), int)\n"
            f"assert {name}({args}) == {name}({args})\n```")


def _free_text(request: LLMRequest, full: str, material: _Material, rng: random.Random,
               writes_code: bool) -> str:
    system, last = _system(request), _last_user(request)
    if "RULES OF USER" in system:  # CAMEL's AI user: two exchanges, then done
        if len(request.messages or []) >= 6:
            return "<CAMEL_TASK_DONE>"
        return f"Instruction: {_sentence(rng, material)}\nInput: None"
    if "RULES OF ASSISTANT" in system:
        return f"Solution: {_prose(rng, material, 2)}\nNext request."
    if "Equal or Not Equal" in full:
        return "Not Equal"
    latm = _latm(last, rng, material)
    if latm is not None:
        return latm
    tail = _LIST_END.search(last.rstrip())
    if tail:  # a numbered list to continue (Self-Instruct)
        k = int(tail.group(1))
        items = [_sentence(rng, material, 8).replace(" will ", " should ", 1).rstrip(".")
                 for _ in range(4)]
        return " " + items[0] + "\n" + "\n".join(f"{k + i}. {it}" for i, it in enumerate(items[1:], 1))
    if request.prompt is not None:  # a raw prompt (Magpie's pre-query template): a query
        return _question(rng, material)
    if "unknown variable x" in full:  # MetaMath's self-verification rewrite
        return f"{_prose(rng, material, 0)} What is the value of unknown variable x?"
    if re.search(r"(?:problem|question|rephrased|rewritten|instruction)\s*:\s*$", last,
                 re.IGNORECASE):  # "write the problem/question this solves"
        return _question(rng, material)
    number = _answer_number(full, material)
    lowered = full.lower()
    if "python" in lowered or "program" in lowered or "```" in system:
        if not writes_code:  # a weak model's answer: it talks about the code instead
            return f"Task: {_prose(rng, material, 2)} I would loop over the values first."
        return f"Task: {_prose(rng, material, 1)}\n\n{_python(rng, full, number)}"
    if "sql" in lowered and "select" in lowered:
        return f"{_prose(rng, material, 1)}\n\n```sql\n{_sql(rng, full)}\n```"
    if any(cue in lowered for cue in ("math", "answer is", "solve", "problem", "calculat")):
        return (f"{_prose(rng, material, 2)}\nStep 1: collect the numbers "
                f"{', '.join(material.numbers[:4]) or number}.\nStep 2: combine them.\n"
                f"The answer is {number}.\n#### {number}")
    return _prose(rng, material, 3 + rng.randrange(3))


def _latm(last: str, rng: random.Random, material: _Material) -> str | None:
    """LATM's formats (methods/latm): the dispatcher names a task of its menu, the wrapper
    gives a function and a use case, the tool user a call that sets ``ans``; else None."""
    if "Classify the following question into one task" in last:
        offered = re.findall(r"^Task: (\S+)$", last, re.MULTILINE)
        return f"Task: {rng.choice(offered)}" if offered else "Task: unknown"
    if "Use cases:" in last and "Success!" in last:
        return ("Here is a function to solve a class of problems:\n```python\n"
                "def tool(x):\n    return x\n```\n\nUse cases:\nQuestion: "
                f"{_question(rng, material)}\nSolution:\n```python\nret = tool(1)\n"
                "ans = ret\n```")
    if last.startswith("Here is a function to solve a class of problems"):
        return f"```python\nret = tool({rng.randrange(1, 200)})\nans = str(ret)\n```"
    return None


def _question(rng: random.Random, material: _Material) -> str:
    """A question that states the material's numbers and asks for something."""
    numbers = material.numbers[:3] or [str(rng.randrange(2, 90))]
    facts = " ".join(f"{rng.choice(_NAMES)} has {n} {rng.choice(_WORDS)}s." for n in numbers)
    return (f"{facts} Can you explain how {rng.choice(_NAMES)} should {rng.choice(_VERBS)} the "
            f"{rng.choice(_ADJ)} {rng.choice(_WORDS)} and how many {rng.choice(_WORDS)}s "
            f"are left in the end?")


def _sql(rng: random.Random, full: str) -> str:
    tables = _TABLE.findall(full) or _TABLE_LINE.findall(full)
    table = rng.choice(tables) if tables else "sqlite_master"
    return f"SELECT * FROM {table} LIMIT {rng.randrange(1, 6)}"


# --- schema instances ------------------------------------------------------------------------

_SHORT = ("name", "entity", "entities", "head", "tail", "subject", "object", "keyword", "topic",
          "role", "title", "label", "relation", "tag", "category", "domain", "context", "seed")
_ASKING = ("question", "instruction", "query", "prompt", "task", "problem", "request")
_GROUNDED = ("answer", "fact", "clue", "evidence", "passage", "quote", "span", "text", "summary",
             "support", "sentence", "excerpt")
_NEGATIVE = ("same", "equal", "duplicate", "unsafe", "harm", "contradict", "refus", "toxic",
             "hallucinat", "invented", "flag")


class _Instance:
    """A JSON value valid under a (simple) JSON schema, content chosen by property name."""

    def __init__(self, rng: random.Random, material: _Material, full: str,
                 writes_code: bool = True) -> None:
        self.rng, self.material, self.full = rng, material, full
        self.writes_code = writes_code
        self.focus: _Material | None = None
        # The prompt asks to copy existing Q-A pairs: (question, the sentence after it) pairs.
        self.copying = "word for word" in full or "copy" in full.lower()
        qa = _QA_PREFIX
        self.asked = [(qa.sub("", s), qa.sub("", t))
                      for s, t in zip(material.sentences, material.sentences[1:], strict=False)
                      if s.endswith("?") and not t.endswith("?")]
        self.answer_next: str | None = None

    def value(self, schema: dict[str, Any], name: str) -> Any:
        branches = schema.get("anyOf") or schema.get("oneOf")
        if branches:  # a union (tool calls | content): one branch, as a model would pick
            return self.value(self.rng.choice(branches), name)
        if "enum" in schema:
            return self.rng.choice(schema["enum"])
        if "const" in schema:
            return schema["const"]
        kind = schema.get("type", "object" if "properties" in schema else "string")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind == "object":
            props = schema.get("properties", {})
            # Grounded fields first: the sentence one picks is where this object's short
            # phrases (entities, head/tail) come from, as an extractor's would.
            if any(g in k.lower() for k in props for g in _GROUNDED):
                self.focus = None
            # Copying Q-A pairs out of a text: the question first, its answer is what follows.
            lead = _ASKING if self.copying else _GROUNDED
            first = sorted(props, key=lambda k: not any(g in k.lower() for g in lead))
            made = {key: self.value(props[key], key) for key in first}
            return {key: made[key] for key in props}
        if kind == "array":
            low = int(schema.get("minItems", 1))
            high = int(schema.get("maxItems", max(low, 3)))
            count = max(low, min(high, low + self.rng.randrange(3), 3 if high > 3 else high))
            item = schema.get("items", {"type": "string"})
            singular = re.sub(r"ies$", "y", name) if name.endswith("ies") else name.rstrip("s")
            return [self.value(item, singular) for _ in range(count)]
        if kind in ("integer", "number"):
            return self.number(schema, name, kind)
        if kind == "boolean":
            negative = any(cue in name.lower() for cue in _NEGATIVE)
            return (self.rng.random() < 0.1) if negative else (self.rng.random() < 0.9)
        if kind == "null":
            return None
        return self.string(schema, name)

    def number(self, schema: dict[str, Any], name: str, kind: str) -> int | float:
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        high = schema.get("maximum", schema.get("exclusiveMaximum", low + 10))
        if "exclusiveMinimum" in schema:
            low += 1
        if "exclusiveMaximum" in schema:
            high -= 1
        if kind == "integer" or any(c in name.lower() for c in ("score", "rating", "total")):
            low, high = int(-(-low // 1)), int(high // 1)
            # Scores from the top of the range (kept by thresholds), but varied (margins, gaps).
            return self.rng.randint(max(low, high - 3), high) if high >= low else low
        return round(self.rng.uniform(low, high), 3)

    def string(self, schema: dict[str, Any], name: str) -> str:
        low, high = int(schema.get("minLength", 0)), int(schema.get("maxLength", 400))
        key = name.lower()
        rng, material = self.rng, self.material
        if key == "sql" or key.endswith("_sql"):
            text = _sql(rng, self.full)
        elif key in ("call", "expression"):
            found = _DEF.findall(self.full)
            fname, params = found[-1] if found else ("len", "x")
            arity = max(1, len([p for p in params.split(",") if p.strip() and "=" not in p]))
            text = f"{fname}({', '.join(str(rng.randrange(1, 50)) for _ in range(arity))})"
        elif key in ("code", "program", "function", "tool", "solution_code") and self.writes_code:
            text = _python(rng, self.full, _answer_number(self.full, material)).split("```")[1]
            text = text.removeprefix("python\n")
        elif any(key.startswith(s) or key.endswith(s) for s in _SHORT) and high <= 80:
            text = self.phrase()
        elif any(a in key for a in _ASKING) and self.copying and self.asked:
            i = rng.randrange(len(self.asked))
            text, self.answer_next = self.asked[i]
        elif any(a in key for a in _ASKING):
            focus = self.phrase()
            text = (f"How would {rng.choice(_NAMES)} {rng.choice(_VERBS)} {focus} "
                    f"for the {rng.choice(_ADJ)} {rng.choice(_WORDS)} and the "
                    f"{rng.choice(_WORDS)} {rng.choice(_WORDS)}?")
        elif any(g in key for g in _GROUNDED) and self.answer_next:
            text, self.answer_next = self.answer_next, None
        elif any(g in key for g in _GROUNDED) and material.sentences:
            text = rng.choice(material.sentences)
            self.focus = _Material(text) if len(text) <= high else None
        else:
            text = _prose(rng, material, 1 + rng.randrange(2))
        if len(text) > high:
            text = text[:high].rsplit(" ", 1)[0] if " " in text[: high] else text[:high]
        while len(text) < low:
            text = f"{text} {rng.choice(_WORDS)}".strip()
        return text[:high]

    def phrase(self) -> str:
        """A short phrase that occurs in the material: a proper name where there is one."""
        rng = self.rng
        material = self.focus or self.material
        if material.proper and rng.random() < 0.7:
            return rng.choice(material.proper)
        if material.words:
            return rng.choice(material.words)
        return rng.choice(_WORDS)
