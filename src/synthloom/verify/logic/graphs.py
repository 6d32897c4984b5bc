"""Graph coloring: color the nodes with at most k colors so no edge joins two equal colors.

The generator plants a k-coloring and draws edges only between differently colored nodes, so
every instance is colorable; the verifier accepts any proper coloring, not just the planted one.
"""

from __future__ import annotations

import random
import re
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task


@register_task
class GraphColoring(LogicTask):
    name = "graph_coloring"
    description = "color a graph's nodes with k colors, no edge within one color (any valid)"
    answer_format = ("the color (a number from 1 to k) of every node from node 1 to the last, "
                     "comma-separated, e.g. 1, 2, 1, 3")
    levels = {1: {"nodes": 5, "colors": 3, "density": 0.5},
              2: {"nodes": 7, "colors": 3, "density": 0.5},
              3: {"nodes": 10, "colors": 3, "density": 0.6},
              4: {"nodes": 12, "colors": 4, "density": 0.6},
              5: {"nodes": 16, "colors": 4, "density": 0.7}}

    def generate(self, rng: random.Random, nodes: int = 8, colors: int = 3,
                 density: float = 0.5) -> dict[str, Any]:
        if nodes < 2 or colors < 2:
            raise ValueError("graph coloring needs >= 2 nodes and >= 2 colors")
        # Every color used at least once (when there are enough nodes), the rest at random.
        planted = [c % colors + 1 for c in range(min(nodes, colors))]
        planted += [rng.randint(1, colors) for _ in range(nodes - len(planted))]
        rng.shuffle(planted)
        edges = [[a + 1, b + 1] for a in range(nodes) for b in range(a + 1, nodes)
                 if planted[a] != planted[b] and rng.random() < density]
        if not edges:
            a, b = next((a, b) for a in range(nodes) for b in range(a + 1, nodes)
                        if planted[a] != planted[b])
            edges = [[a + 1, b + 1]]
        listing = ", ".join(f"{a}-{b}" for a, b in edges)
        question = (f"A graph has {nodes} nodes, numbered 1 to {nodes}, and these edges: "
                    f"{listing}. Color every node with one of the colors 1 to {colors} so that "
                    "the two ends of every edge have different colors.")
        return {"question": question, "answer": ", ".join(map(str, planted)), "nodes": nodes,
                "colors": colors, "edges": edges}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        nodes, colors = int(item["nodes"]), int(item["colors"])
        # "1: 2, 2: 3" style: keep the values after the colons.
        text = re.sub(r"(?i)node\s*\d+\s*[:=]|\b\d+\s*[:=]", "", candidate)
        given = [int(v) for v in re.findall(r"-?\d+", text)]
        if len(given) != nodes:
            return f"expected {nodes} colors, got {len(given)}"
        if any(not 1 <= c <= colors for c in given):
            return f"a color is outside 1-{colors}"
        for a, b in item["edges"]:
            if given[a - 1] == given[b - 1]:
                return f"nodes {a} and {b} share an edge and color {given[a - 1]}"
        return None
