"""The action agent's reply as a program, and its run in the sandbox against the world.

``parse_reply`` is the authors' ``ActionAgent.process_ai_message`` for Python: the reply's
fenced code blocks, joined; only top-level functions (and imports) are kept - "anything
defined outside a function will be ignored"; the main function is the last one and must take
the single argument ``bot``. ``execute`` runs the skill library's code, the new program and
``main(bot)`` in the sandbox (``verify/sandbox.py``: a process of its own, limits, no network),
on a ``Bot`` built from the world state (``random`` seeded from it: a rerun of a program on
the same state does the same, and the requests after it hit the cache); what comes back is
the state after, the chat log and the error (an exception's line in the program), as the
authors' ``env.step`` events. A run
that times out or is killed leaves the state as it was (the authors reset the bot to its last
inventory when a rollout crashed).
"""

from __future__ import annotations

import ast
import inspect
import json
from dataclasses import dataclass, field
from typing import Any

from synthloom.methods.voyager import world as world_module
from synthloom.verify.answers import PYTHON, fenced_blocks
from synthloom.verify.sandbox import SandboxLimits, run_python

_MARK = "@@voyager-events@@ "
WORLD_FILE = "voyager_world.py"
_RUNNER = """\
import json, random, sys, traceback
sys.path.insert(0, ".")
import voyager_world
from voyager_world import Bot
bot = Bot(json.loads({state!r}))
random.seed(bot.seed * 1000003 + bot.steps)  # same state, same run: a rerun replays
space = {{"bot": bot, "Bot": Bot, **{{n: getattr(voyager_world, n)
                                     for n in voyager_world.PRIMITIVES}}}}
error = None
sources = {{"<skills>": {skills!r}, "<program>": {program!r}}}
try:
    for where, source in sources.items():
        exec(compile(source, where, "exec"), space)
    space[{main!r}](bot)
except Exception as exc:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename in sources]
    where = ""
    if frames:
        last = frames[-1]
        text = sources[last.filename].splitlines()[last.lineno - 1].strip()
        where = f" (line {{last.lineno}} of {{last.filename}}: {{text}})"
    error = f"{{type(exc).__name__}}: {{exc}}{{where}}"
print({mark!r} + json.dumps({{"state": bot.state(), "chat": bot.chat_log[-50:],
                            "error": error}}, default=str))
"""


@dataclass
class Program:
    """A parsed reply: the functions kept (``code``, what a skill stores) and the main one."""

    code: str
    name: str


def parse_reply(text: str) -> Program | str:
    """The program in an action reply, or why there is none (the authors' message: "Error
    parsing action response (before program execution): ...")."""
    code = "\n\n".join(b.content for b in fenced_blocks(text, PYTHON))
    prefix = "Error parsing action response (before program execution): "
    if not code.strip():
        return prefix + "no ```python code block in the response"
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return prefix + f"SyntaxError: {exc.msg} (line {exc.lineno})"
    lines = code.splitlines()
    kept, functions = [], []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.Import | ast.ImportFrom):
            start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
            kept.append("\n".join(lines[start - 1: node.end_lineno]))
            if isinstance(node, ast.FunctionDef):
                functions.append(node)
    if not functions:
        return prefix + "no function found; write a function that takes the bot"
    shadowing = [f.name for f in functions if f.name in world_module.PRIMITIVES]
    if shadowing:  # it would replace the primitive for every later program too
        return prefix + (f"function {shadowing[0]} has the name of a control primitive; "
                         "name your functions differently")
    main = functions[-1]
    params = [a.arg for a in main.args.posonlyargs + main.args.args]
    if params != ["bot"] or main.args.vararg or main.args.kwonlyargs:
        return prefix + f"Main function {main.name} must take a single argument named 'bot'"
    return Program(code="\n\n".join(kept), name=main.name)


@dataclass
class Execution:
    """What one run did: the state after, the chat log, the error (None: it ran through)."""

    state: dict[str, Any]
    chat: list[str] = field(default_factory=list)
    error: str | None = None
    status: str = "ok"
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        # No timing here: a record's id hashes its columns, equal on every run and executor.
        return {"status": self.status, "error": self.error, "chat": self.chat}


def world_source() -> str:
    return inspect.getsource(world_module)


async def execute(program: Program, skills: str, state: dict[str, Any],
                  limits: SandboxLimits) -> Execution:
    """Run the skill library, the program and ``main(bot)`` in the sandbox."""
    code = _RUNNER.format(state=json.dumps(state), skills=skills, program=program.code,
                          main=program.name, mark=_MARK)
    result = await run_python(code, limits, files={WORLD_FILE: world_source()})
    for line in reversed(result.stdout.splitlines()):
        if line.startswith(_MARK):
            events = json.loads(line[len(_MARK):])
            return Execution(state=events["state"], chat=[str(c) for c in events["chat"]],
                             error=events["error"], status="ok" if events["error"] is None
                             else "error", seconds=result.seconds)
    if result.status in ("timeout", "killed"):
        why = (f"the program timed out after {limits.timeout_s:g} s (an infinite loop?)"
               if result.status == "timeout" else f"the program was killed ({result.reason})")
    else:
        tail = (result.stderr.strip().splitlines() or [result.reason or "no output"])[-1]
        why = f"the program stopped before its end: {tail[:300]}"
    return Execution(state=state, error=why, status=result.status, seconds=result.seconds)
