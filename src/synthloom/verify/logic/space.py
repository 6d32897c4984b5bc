"""SynLogic's ``space_reasoning``, after games/tasks/space_reasoning: a grid of vertices (square,
triangular or diamond tiles), a unique item on each; a walk is told as the items seen at its
waypoints and the steps between them ("You see a red pen, then 2 step(s) right, and you see a
blue cup."), maybe a jump to an unknown vertex and a second walk; the question walks on from
where you stand and asks which item you see.

The generator follows the authors' ``SpaceReasoning``: their three networks with their edges
(the triangle's quirk kept: the second vertex of a row has no edge "left"), BFS paths with the
directions tried in random order, runs of one direction merged ("3 step(s) right"), their knobs
``n``, ``num_waypoints``, ``unknown_node_num``, ``jump_ratio`` and their prompt; the second walk
passes one vertex of the first walk, and the question's path ends on a seen vertex through up
to three unseen ones.

**Determined answers only.** The authors label an item with the item at the end vertex, whether
or not the text lets a reader know it. Here a solver decides it from what the text tells: each
walk fixes the relative positions of the items seen on it (the step vectors of the lattice),
walks are tied together where they name the same item (items are unique), and the answer is
the item seen at the question's end position in the frame of the current position. Only items
whose answer the solver determines are emitted (``unique``; ``count_solutions`` is 1 exactly
then; an undecided draw is drawn again), and the verifier compares with the solver's answer,
recomputed from the stored walks. With the authors' construction the solver has decided every
draw so far (1,000 items, levels 1-5): the second walk always passes a vertex of the first and
the question always ends on a seen vertex; the check guards knob changes and future edits.
Departures: English only (theirs: half Chinese); items are colored objects (the authors'
item list is not shipped); the answer is given after "Answer:" (theirs: in ``\\boxed{}``,
which the shared reader also takes); the question states N (theirs says "N" without a value);
no ``unknown`` answers (never the case in their construction either).
"""

from __future__ import annotations

import random
from collections import deque
from itertools import pairwise
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task
from synthloom.verify.logic.exchange import CATEGORIES, COLORS

#: Direction -> step on the lattice (x doubled so that diagonal steps are whole).
STEP = {"right": (2, 0), "left": (-2, 0), "up": (0, -1), "down": (0, 1),
        "bottom-left": (-1, 1), "bottom-right": (1, 1), "top-left": (-1, -1),
        "top-right": (1, -1)}

SHAPES = ("triangle", "diamond", "square")

DESCRIPTION = {
    "square": "You are on an N*N square grid where each row has N squares. Each vertex of these "
              "squares has a unique item. You will move along the edges of these tiles and see "
              "objects at the vertices.",
    "diamond": "There is an N-layer diamond network where the 1st layer has one diamond, the "
               "2nd layer has 2 diamonds, the 3rd layer has 3 diamonds, and so on. The Nth "
               "layer has N diamonds, with each vertex having a unique item. You will move "
               "along the edges and see objects at each vertex.",
    "triangle": "There is an N-layer triangular network where the 1st layer has one triangle, "
                "the 2nd layer has 3 triangles, the 3rd layer has 5 triangles, and so on. The "
                "Nth layer has 2N+1 triangles, with each vertex having a unique item. You will "
                "move along the edges and see objects at each vertex.",
}

PROMPT = ("Examine the following spatial arrangement: {context}. The question is: {question} "
          "Make sure your answer matches exactly with the item names in the problem.")

Graph = list[dict[str, int]]  # vertex -> {direction: neighbour}


def _link(g: Graph, a: int, d: str, b: int) -> None:
    g[a][d] = b


def network(shape: str, n: int) -> Graph:
    """The authors' ``build_<shape>_network`` edges, vertices numbered row by row."""
    if shape == "square":
        g: Graph = [{} for _ in range((n + 1) ** 2)]
        for r in range(n + 1):
            for c in range(n + 1):
                i = r * (n + 1) + c
                if c < n:
                    _link(g, i, "right", i + 1)
                    _link(g, i + 1, "left", i)
                if r < n:
                    _link(g, i, "down", i + n + 1)
                    _link(g, i + n + 1, "up", i)
        return g
    rows, k = [], 0
    for width in range(1, n + 2):
        rows.append(list(range(k, k + width)))
        k += width
    if shape == "diamond":
        rows.append(list(range(k, k + n)))
        k += n
    g = [{} for _ in range(k)]
    for r in range(n + 1):
        row = rows[r]
        if shape == "triangle" and r:
            # As the authors wire it: the row's second vertex gets no "left" edge (width > 2).
            _link(g, row[0], "right", row[1])
            _link(g, row[-1], "left", row[-2])
            for i in range(1, len(row) - 1):
                _link(g, row[i], "right", row[i + 1])
                _link(g, row[i + 1], "left", row[i])
        if r < n:
            nxt = rows[r + 1]
            for i in range(len(row)):
                _link(g, row[i], "bottom-left", nxt[i])
                _link(g, nxt[i], "top-right", row[i])
                _link(g, row[i], "bottom-right", nxt[i + 1])
                _link(g, nxt[i + 1], "top-left", row[i])
    if shape == "diamond":
        last, above = rows[-1], rows[-2]
        for i in range(n + 1):
            if i != n:
                _link(g, above[i], "bottom-right", last[i])
                _link(g, last[i], "top-left", above[i])
            if i:
                _link(g, above[i], "bottom-left", last[i - 1])
                _link(g, last[i - 1], "top-right", above[i])
    return g


def _path(rng: random.Random, g: Graph, start: int, end: int) -> list[str]:
    """The directions of a BFS shortest path (directions tried in random order, as theirs)."""
    if start == end:
        return []
    back: dict[int, tuple[int, str]] = {}
    queue, seen = deque([start]), {start}
    while queue:
        cur = queue.popleft()
        dirs = list(g[cur])
        rng.shuffle(dirs)
        for d in dirs:
            nxt = g[cur][d]
            if nxt in seen:
                continue
            seen.add(nxt)
            back[nxt] = (cur, d)
            if nxt == end:
                out = []
                while nxt != start:
                    nxt, step = back[nxt]
                    out.append(step)
                return out[::-1]
            queue.append(nxt)
    raise ValueError("disconnected network")


def _runs(dirs: list[str]) -> list[list[Any]]:
    """``[right, right, up]`` -> ``[["right", 2], ["up", 1]]``."""
    runs: list[list[Any]] = []
    for d in dirs:
        if runs and runs[-1][0] == d:
            runs[-1][1] += 1
        else:
            runs.append([d, 1])
    return runs


def _walk(rng: random.Random, g: Graph, items: list[str], stops: list[int]) -> list[Any]:
    """A told walk: ``[item, runs, item, runs, item, ...]`` through ``stops``."""
    told: list[Any] = [items[stops[0]]]
    for a, b in pairwise(stops):
        told += [_runs(_path(rng, g, a, b)), items[b]]
    return told


def _say_walk(told: list[Any]) -> str:
    text = f"You see a {told[0]}, "
    for i in range(1, len(told), 2):
        steps = ", ".join(f"then {k} step(s) {d}" for d, k in told[i])
        text += f"{steps}, and you see a {told[i + 1]}. "
    return text


def _offset(runs: list[list[Any]]) -> tuple[int, int]:
    return (sum(STEP[d][0] * k for d, k in runs), sum(STEP[d][1] * k for d, k in runs))


def solve(walks: list[list[Any]], back_to_jump: bool, moves: list[list[Any]]) -> str | None:
    """The item seen after ``moves`` from where the walks leave you, if the text determines
    it: positions are relative within a walk; walks naming the same item share one frame."""
    frames: list[dict[str, tuple[int, int]]] = []
    for told in walks:
        pos, frame = (0, 0), {told[0]: (0, 0)}
        for i in range(1, len(told), 2):
            dx, dy = _offset(told[i])
            pos = (pos[0] + dx, pos[1] + dy)
            frame[told[i + 1]] = pos
        frames.append(frame)
    # The current position: the end of the last walk (or its start, when you go back there).
    current = walks[-1][0] if back_to_jump else walks[-1][-1]
    known = dict(frames[-1])
    merged = True
    rest = frames[:-1]
    while merged:  # tie in every frame that shares an item with what is known
        merged = False
        for frame in list(rest):
            common = next((it for it in frame if it in known), None)
            if common is None:
                continue
            sx = known[common][0] - frame[common][0]
            sy = known[common][1] - frame[common][1]
            for it, (x, y) in frame.items():
                known.setdefault(it, (x + sx, y + sy))
            rest.remove(frame)
            merged = True
    dx, dy = _offset(moves)
    target = (known[current][0] + dx, known[current][1] + dy)
    found = [it for it, p in known.items() if p == target]
    return found[0] if len(found) == 1 else None


@register_task
class SpaceReasoning(LogicTask):
    name = "space_reasoning"
    synlogic = "games/tasks/space_reasoning/scripts/space_reasoning.py"
    description = "walk a grid of items told by steps and seen items; which item do you reach"
    answer_format = "the item's name exactly as written in the problem, e.g. red pen"
    unique = True
    # The authors' run.sh: n = 8, waypoints 3/5/7/10, unknown vertices 1-5, jump ratio 0.5.
    levels = {1: {"n": 3, "waypoints": 3, "unknown": 1, "jump_ratio": 0.0},
              2: {"n": 4, "waypoints": 3, "unknown": 1, "jump_ratio": 0.5},
              3: {"n": 5, "waypoints": 5, "unknown": 2, "jump_ratio": 0.5},
              4: {"n": 8, "waypoints": 7, "unknown": 3, "jump_ratio": 0.5},
              5: {"n": 8, "waypoints": 10, "unknown": 5, "jump_ratio": 0.5}}

    def generate(self, rng: random.Random, n: int = 8, waypoints: int = 10, unknown: int = 5,
                 jump_ratio: float = 0.5, shape: str | None = None) -> dict[str, Any]:
        if not 1 <= n <= 8 or waypoints < 2 or unknown < 1:
            raise ValueError("n must be 1-8, waypoints >= 2, unknown >= 1")
        pool = [f"{c} {k}" for c in COLORS for k in CATEGORIES]
        while True:
            kind = shape or rng.choice(SHAPES)
            g = network(kind, n)
            items = rng.sample(pool, len(g))
            stops = rng.sample(range(len(g)), min(waypoints, len(g)))
            walks = [_walk(rng, g, items, stops)]
            seen = list(stops)
            back = False
            if rng.random() < jump_ratio and len(g) - len(seen) >= unknown:
                # The authors' jump2unknown: unseen vertices and one seen one, shuffled.
                second = rng.sample([i for i in range(len(g)) if i not in seen], unknown)
                second.append(rng.choice(seen))
                rng.shuffle(second)
                walks.append(_walk(rng, g, items, second))
                seen += second
                back = rng.random() < 0.5
                if back:
                    seen.append(second[0])
            here, goal = seen[-1], rng.choice(seen)
            # The question's path: through up to three unseen vertices, as theirs.
            via = rng.sample([i for i in range(len(g)) if i not in seen], min(3, len(g) - len(
                set(seen))))
            dirs: list[str] = []
            for a, b in zip([here, *via], [*via, goal], strict=True):
                dirs += _path(rng, g, a, b)
            moves = _runs(dirs)
            answer = solve(walks, back, moves)
            if answer is not None:
                break
        context = f"{DESCRIPTION[kind]} Here N = {n}. You start from one of the points, " \
            + _say_walk(walks[0])
        if len(walks) > 1:
            context += "Then you jump to a random node, " + _say_walk(walks[1])
            if back:
                context += "Then you return to that random node. "
        steps = ", ".join(f"go {k} step(s) {d}" for d, k in moves)
        question = "Starting from your current position, " + \
            (f"{steps}, what item do you see?" if steps else "what item do you see?")
        return {"question": PROMPT.format(context=context.rstrip(" ."), question=question),
                "answer": answer, "shape": kind, "n": n, "walks": walks,
                "back_to_jump": back, "moves": moves}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        want = solve(item["walks"], bool(item["back_to_jump"]), item["moves"])
        if want is None:
            return "the puzzle does not determine the item"
        got = " ".join(candidate.lower().replace("*", "").split()).strip(". ")
        return None if got == want.lower() else f"not the item there ({got[:40]!r})"

    def count_solutions(self, item: dict[str, Any], limit: int = 2) -> int | None:
        found = solve(item["walks"], bool(item["back_to_jump"]), item["moves"])
        return 1 if found is not None else limit
