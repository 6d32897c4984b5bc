"""SynLogic's ``space_reasoning_tree``, after games/tasks/space_reasoning_tree: a tree of named
items (up to five layers) told by scattered facts ("X has 3 children: ...", "X has no
grandchildren", "X, Y and Z are siblings"); name every cousin of one item (the children of its
parent's siblings).

The generator follows the authors' ``build_five_layer_tree`` (3-6 children of the root, 2-5
below each, then 1-4 with probability 0.75 and 1-3 with 0.6, the rest hung anywhere) and
``generate_tree_description``: the facts that decide the cousins (the grandparent's
grandchildren and the parent's children, or every uncle's children), plus facts about a third
to a half of the other items, shuffled. The verifier recomputes the cousins from the stored
tree and compares sets. Departures: with the authors' second way ("every uncle's children") the
grandparent's children are told too (without that fact nothing says which items are the
uncles); items are colored objects (the authors' bundled item list is not shipped); English
only.
"""

from __future__ import annotations

import random
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task, split_list
from synthloom.verify.logic.exchange import CATEGORIES, COLORS

PROMPT = ("Below is a spatial reasoning problem: {context} Answer the following question: "
          "{question}")


def cousins(parent: dict[str, str | None], item: str) -> set[str]:
    """The children of the siblings of ``item``'s parent."""
    p = parent.get(item)
    g = parent.get(p) if p else None
    if g is None:
        return set()
    uncles = {n for n, q in parent.items() if q == g and n != p}
    return {n for n, q in parent.items() if q in uncles}


def _hang(p: str, many: int, rest: list[str], children: dict[str, list[str]],
          parent: dict[str, str | None]) -> list[str]:
    """The next ``many`` unplaced items become children of ``p``."""
    kids = rest[:many]
    del rest[:many]
    for k in kids:
        children[p].append(k)
        parent[k] = p
    return kids


def _names(items: list[str]) -> str:
    return ", ".join(items)


def _kids(n: int) -> str:
    return "child" if n == 1 else "children"


@register_task
class SpaceReasoningTree(LogicTask):
    name = "space_reasoning_tree"
    synlogic = "games/tasks/space_reasoning_tree/scripts/space_reasoning_tree.py"
    description = "name an item's cousins in a tree told by scattered facts"
    answer_format = "the cousins' names, comma-separated (any order), e.g. red pen, blue cup"
    # The authors' knobs: min_nodes, max_nodes (their defaults 50-300 are levels 4-5).
    levels = {1: {"nodes": (10, 15)}, 2: {"nodes": (15, 30)}, 3: {"nodes": (30, 60)},
              4: {"nodes": (50, 150)}, 5: {"nodes": (150, 300)}}

    def generate(self, rng: random.Random, nodes: tuple[int, int] = (50, 300)) -> dict[str, Any]:
        if not 10 <= nodes[0] <= nodes[1] <= len(COLORS) * len(CATEGORIES):
            raise ValueError("nodes must lie in 10-1000")
        while True:
            count = rng.randint(*nodes)
            names = [f"{c} {k}" for c, k in rng.sample([(c, k) for c in COLORS
                                                         for k in CATEGORIES], count)]
            children: dict[str, list[str]] = {n: [] for n in names}
            parent: dict[str, str | None] = {names[0]: None}
            rest = names[1:]
            level2 = _hang(names[0], rng.randint(3, 6), rest, children, parent)
            level3 = [k for p in level2 for k in _hang(p, rng.randint(2, 5), rest, children,
                                                       parent)]
            level4 = [k for p in level3 if rng.random() < 0.75 and rest
                      for k in _hang(p, rng.randint(1, 4), rest, children, parent)]
            for p in level4:
                if rng.random() < 0.6 and rest:
                    _hang(p, rng.randint(1, 3), rest, children, parent)
            while rest and level2:
                _hang(rng.choice(level2 + level3 + level4), 1, rest, children, parent)
            # Items with a cousin: a grandparent with another child that has children.
            targets = [n for n in names if parent.get(n) and parent.get(parent[n]) and any(
                children[u] for u in children[str(parent[parent[n]])] if u != parent[n])]
            if targets:
                break
        target = rng.choice(targets)
        p = parent[target]
        g = parent[p] if p else None
        assert p is not None and g is not None
        facts = []
        if rng.random() < 0.5:  # the authors' method1
            grand = [k for u in children[g] for k in children[u]]
            facts.append(f"{g} has {len(grand)} grandchildren: {_names(grand)}.")
            facts.append(f"{p} has {len(children[p])} {_kids(len(children[p]))}: "
                         f"{_names(children[p])}.")
        else:  # method2, with the grandparent's children told (see the docstring)
            facts.append(f"{g} has {len(children[g])} {_kids(len(children[g]))}: "
                         f"{_names(children[g])}.")
            for u in children[g]:
                facts.append(f"{u} has {len(children[u])} {_kids(len(children[u]))}: "
                             f"{_names(children[u])}." if children[u] else f"{u} has no children.")
        others = [n for n in names if n not in (target, g, p)]
        for n in rng.sample(others, rng.randint(len(names) // 3, len(names) // 2)):
            kind = rng.choice(["children", "grandchildren", "no_children", "no_grandchildren",
                               "siblings"])
            grand = [k for c in children[n] for k in children[c]]
            if kind == "children" and children[n]:
                facts.append(f"{n} has {len(children[n])} {_kids(len(children[n]))}: "
                             f"{_names(children[n])}.")
            elif kind == "grandchildren" and grand:
                facts.append(f"{n} has {len(grand)} grandchildren: {_names(grand)}.")
            elif kind == "no_children" and not children[n]:
                facts.append(f"{n} has no children.")
            elif kind == "no_grandchildren" and not grand:
                facts.append(f"{n} has no grandchildren" + (
                    f" but has {len(children[n])} {_kids(len(children[n]))}: "
                    f"{_names(children[n])}." if children[n] else "."))
            elif kind == "siblings" and parent.get(n):
                sibs = [s for s in children[str(parent[n])] if s != n]
                if sibs:
                    facts.append(f"{n} and {_names(sibs)} are siblings.")
        rng.shuffle(facts)
        context = f"You have been given a tree structure with {count} nodes. " + " ".join(facts)
        question = f"What is the cousin of the {target}? If there are multiple objects, " \
                   "provide them as a comma-separated list."
        return {"question": PROMPT.format(context=context, question=question),
                "answer": ", ".join(sorted(cousins(parent, target))), "parent": parent,
                "target": target, "nodes": count}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        got = {" ".join(v.lower().split()) for v in split_list(candidate)}
        if "," not in candidate and len(got) > 1:  # a single name has a space in it
            got = {" ".join(candidate.lower().split()).strip(". ")}
        want = cousins(item["parent"], item["target"])
        return None if got == {w.lower() for w in want} else "not the set of cousins"
