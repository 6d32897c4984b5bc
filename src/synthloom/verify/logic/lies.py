"""SynLogic's ``web_of_lies``, after games/tasks/web_of_lies: people at places who always tell
the truth or always lie, statements about each other, a narrator's word on some of them; does
each asked-about person tell the truth?

The generator follows the authors' ``_generate_game_instance``: a hidden truth/lie per person,
half of them asked about, up to ``num_person // 2 * (6 - difficulty) / 5`` narrated ("X never
lies"), 0-3 statements per person (simple "X says Y lies"; with ``statement_type`` 1 also "at
least one of Y and Z tells the truth" and "they are the same type as Y"), every unmentioned
person mentioned once more, 1 to ``2 + difficulty`` irrelevant remarks, the puzzle kept only
when the asked-about people have one answer over every consistent assignment.

Departures: the authors enumerate all 2^n assignments (n = 18 is 262,144 per draw); here the
people are split into the connected parts of the statement graph and each part is searched
with early checks, which counts the same answers. English only.
"""

from __future__ import annotations

import random
import re
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task

NAMES = ["Emma", "Noah", "Olivia", "Liam", "Ava", "Jacob", "Sophia", "Mason", "Isabella",
         "William", "Mia", "Ethan", "Charlotte", "James", "Amelia", "Alexander", "Harper",
         "Michael", "Evelyn", "Benjamin", "Abigail", "Daniel", "Emily", "Matthew", "Elizabeth",
         "Henry", "Sofia", "Joseph", "Madison", "Samuel"]
PLACES = ["park", "hospital", "school", "library", "restaurant", "supermarket", "movie theater",
          "stadium", "cafe", "museum", "square", "garden", "train station", "airport", "bank",
          "mall", "hotel", "swimming pool", "zoo", "art gallery", "theater", "bookstore", "gym",
          "office", "community center", "night market", "aquarium", "botanical garden",
          "exhibition center", "amusement park"]
NARRATE_TRUE = ["{r} tells the truth.", "{r} is always honest.", "{r} never lies.",
                "You can trust everything {r} says."]
NARRATE_LIE = ["{r} lies.", "{r} always lies.", "{r} never tells the truth.",
               "Don't trust anything {r} says."]
IRRELEVANT = ["{r} is always punctual.", "{r} never gets angry at anyone.",
              "{r} is nice to everyone.", "{r} has strong principles.", "{r} is loyal to friends.",
              "{r} had an interesting encounter yesterday.",
              "{r} has been contemplating life lately.", "{r} thinks their friend is lying.",
              "{r} suspects the neighbor's dog stole their breakfast."]
ABOUT = ["{r} says {t} is friendly.", "{r} claims to know {t}.",
         "{r} says {t} is a good person.", "{r} mentions that {t} is smart."]

Statement = list  # ["simple", speaker, target, claim] | ["one", s, [t1, t2], claim]
#                   | ["same", s, target, claim]; claim = what the speaker asserts


def _fact(st: Statement, truth: dict[int, bool]) -> bool:
    """Whether the fact a statement is about holds (before the claim)."""
    kind = st[0]
    if kind == "simple":
        return truth[st[2]]
    if kind == "one":
        return truth[st[2][0]] or truth[st[2][1]]
    return truth[st[1]] == truth[st[2]]


def _people_of(st: Statement) -> list[int]:
    return [st[1], *st[2]] if st[0] == "one" else [st[1], st[2]]


def _consistent(st: Statement, truth: dict[int, bool]) -> bool:
    """A truth-teller's claim matches the fact, a liar's does not."""
    return (_fact(st, truth) == st[3]) == truth[st[1]]


def _part_answers(members: list[int], targets: list[int], statements: list[Statement],
                  fixed: dict[int, bool], limit: int) -> set[tuple[tuple[int, bool], ...]]:
    """The targets' values over the consistent assignments of one connected part (up to
    ``limit``): depth first, each statement checked once its last person has a value."""
    mine = set(members)
    order = sorted(members, key=lambda p: (p not in fixed, p))
    rank = {p: i for i, p in enumerate(order)}
    checks: dict[int, list[Statement]] = {}
    for st in statements:
        if st[1] in mine:
            checks.setdefault(max(rank[p] for p in _people_of(st)), []).append(st)
    found: set[tuple[tuple[int, bool], ...]] = set()
    truth: dict[int, bool] = {}

    def search(i: int) -> bool:
        if i == len(order):
            found.add(tuple((p, truth[p]) for p in targets))
            return len(found) >= limit
        p = order[i]
        for value in ((fixed[p],) if p in fixed else (True, False)):
            truth[p] = value
            if all(_consistent(st, truth) for st in checks.get(i, [])) and search(i + 1):
                return True
        del truth[p]
        return False

    search(0)
    return found


def answers(statements: list[Statement], fixed: dict[int, bool], asked: list[int],
            limit: int = 2) -> set[tuple[bool | None, ...]]:
    """The asked-about people's values over every consistent assignment (up to ``limit``
    distinct tuples): each connected part is searched alone, and the parts' answers multiply."""
    people = sorted({p for st in statements for p in _people_of(st)} | set(fixed) | set(asked))
    parent = {p: p for p in people}

    def root(p: int) -> int:
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    for st in statements:
        ps = _people_of(st)
        for q in ps[1:]:
            parent[root(q)] = root(ps[0])
    parts: dict[int, list[int]] = {}
    for p in people:
        parts.setdefault(root(p), []).append(p)
    combos: set[tuple[tuple[int, bool], ...]] = {()}
    for members in parts.values():
        targets = [p for p in members if p in asked]
        if not targets:
            continue  # the part is consistent (the hidden truth satisfies it); nothing asked
        found = _part_answers(members, targets, statements, fixed, limit)
        combos = {c + f for c in combos for f in found}
        if len(combos) >= limit or not combos:
            break
    out = set()
    for combo in list(combos)[:limit]:
        values = dict(combo)
        out.add(tuple(values.get(p) for p in asked))  # a part left unsearched: None
    return out


@register_task
class WebOfLies(LogicTask):
    name = "web_of_lies"
    synlogic = "games/tasks/web_of_lies/scripts/web_of_lies.py"
    description = "who tells the truth, from who says whom lies"
    answer_format = "yes or no for each question in order, separated by commas, e.g. " \
                    "yes, no, yes"
    unique = True
    # The authors' knobs; their run.sh uses 10-18 people at difficulty 5, statement_type 0.
    levels = {1: {"num_person": 4, "difficulty": 1, "statement_type": 0},
              2: {"num_person": 6, "difficulty": 2, "statement_type": 0},
              3: {"num_person": 8, "difficulty": 3, "statement_type": 1},
              4: {"num_person": 12, "difficulty": 4, "statement_type": 1},
              5: {"num_person": 16, "difficulty": 5, "statement_type": 1}}

    def generate(self, rng: random.Random, num_person: int = 10, difficulty: int = 3,
                 statement_type: int = 0) -> dict[str, Any]:
        if not 4 <= num_person <= len(NAMES) or not 1 <= difficulty <= 5:
            raise ValueError("num_person must be 4-30 and difficulty 1-5")
        while True:
            item = self._draw(rng, num_person, difficulty, statement_type)
            if item is not None:
                return item

    def _draw(self, rng: random.Random, n: int, difficulty: int,
              statement_type: int) -> dict[str, Any] | None:
        names, places = rng.sample(NAMES, n), rng.sample(PLACES, n)
        truth = {i: rng.choice([True, False]) for i in range(n)}
        asked = rng.sample(range(n), max(1, n // 2))
        most = min(max(1, int(n // 2 * (6 - difficulty) / 5)), n - len(asked))
        others = [i for i in range(n) if i not in asked]
        narrated = rng.sample(others, min(rng.randint(0, most), len(others)))
        statements: list[Statement] = []

        def state(speaker: int, target: int, wide: bool) -> None:
            if not wide:
                statements.append(["simple", speaker, target, truth[target] == truth[speaker]])
                return
            rest = [j for j in range(n) if j not in (speaker, target)]
            if rng.random() < 0.5 and rest:
                pair = [target, rng.choice(rest)]
                st: Statement = ["one", speaker, pair, None]
            else:
                st = ["same", speaker, target, None]
            fact = _fact(st, truth)
            st[3] = fact if truth[speaker] else not fact
            statements.append(st)

        for i in range(n):
            roll = rng.random()
            count = 0 if roll < 0.1 else 1 if roll < 0.8 else 2 if roll < 0.95 else 3
            if not count:
                continue
            if statement_type == 0 or rng.random() > 0.1:
                for t in rng.sample([j for j in range(n) if j != i], count):
                    state(i, t, False)
            else:
                state(i, rng.choice([j for j in range(n) if j != i]), True)
        mentioned = {p for st in statements for p in _people_of(st)[1:]} | set(narrated)
        for i in range(n):
            if i not in mentioned:
                state(rng.choice([j for j in range(n) if j != i]), i,
                      statement_type == 1 and rng.random() <= 0.1)
        fixed = {i: truth[i] for i in narrated}
        if len(answers(statements, fixed, asked)) != 1:
            return None

        def ref(i: int) -> str:
            return f"the person at the {places[i]}" if rng.random() < 0.7 else names[i]

        lines = [f"{names[i]} is at the {places[i]}." for i in range(n)]
        for i in narrated:
            lines.append(rng.choice(NARRATE_TRUE if truth[i] else NARRATE_LIE).format(r=ref(i)))
        for st in statements:
            s = ref(st[1])
            if st[0] == "simple":
                lines.append(f"{s} says {ref(st[2])} {'tells the truth' if st[3] else 'lies'}.")
            elif st[0] == "one":
                lines.append(f"{s} says at least one of {ref(st[2][0])} and {ref(st[2][1])} "
                             f"always tells the {'truth' if st[3] else 'lies'}.")
            else:
                lines.append(f"{s} says they {'are' if st[3] else 'are not'} the same type as "
                             f"{ref(st[2])}.")
        for _ in range(rng.randint(1, 2 + difficulty)):
            a, b = rng.sample(range(n), 2)
            text = rng.choice(IRRELEVANT) if rng.random() < 0.5 else rng.choice(ABOUT)
            lines.append(text.format(r=ref(a), t=ref(b)))
        rng.shuffle(lines)
        lines = [s[0].upper() + s[1:] for s in lines]
        questions = " ".join(f"Does {ref(i)} tell the truth?" for i in asked)
        question = (f"In this puzzle, we have {n} people, and each person either always tells "
                    f"the truth or always lies.\nGiven information: {' '.join(lines)}\n"
                    f"Please answer: {questions}")
        return {"question": question,
                "answer": ", ".join("yes" if truth[i] else "no" for i in asked),
                "statements": statements, "narrated": {str(i): truth[i] for i in narrated},
                "asked": asked, "num_person": n}

    def _solutions(self, item: dict[str, Any], limit: int) -> set[tuple[bool | None, ...]]:
        fixed = {int(k): bool(v) for k, v in item["narrated"].items()}
        return answers(item["statements"], fixed, [int(i) for i in item["asked"]], limit)

    def count_solutions(self, item: dict[str, Any], limit: int = 2) -> int:
        return len(self._solutions(item, limit))

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        # The authors' reading: yes/true/truth and no/false/lie(s), in order.
        words = re.findall(r"[a-z]+", candidate.lower())
        values = []
        for w in words:
            if w in ("yes", "true", "truth"):
                values.append(True)
            elif w in ("no", "false", "lie", "lies", "liar"):
                values.append(False)
            elif w not in ("and", "the", "tells"):
                return f"unexpected word {w!r}"
        if len(values) != len(item["asked"]):
            return f"expected {len(item['asked'])} answers, got {len(values)}"
        # Unique by construction (count_solutions == 1): the puzzle's one answer.
        found = self._solutions(item, 2)
        if len(found) != 1:
            return "the puzzle has no single answer"
        return None if tuple(values) in found else "wrong truth values"
