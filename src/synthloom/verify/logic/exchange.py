"""SynLogic's ``goods_exchange``, after games/tasks/goods_exchange: n people each own one
colored item; after a list of swaps told in nine ways ("The owners of the red pen and the blue
cup exchanged these items", "Alice traded the red pen for the blue cup", a three-way
exchange, ...), who owns what?

The generator follows the authors' ``_generate_operations`` with their English templates
(operation1-7, 11 and 13; the authors' other kinds exist only in Chinese). Each exchange is
stored as ``[kind, ...]`` and the verifier replays them, so the answer comes from the puzzle's
fields. Departure: English only; any order of the pairs and either quote style is accepted
(the authors read the last ```python block and compare the tuple).
"""

from __future__ import annotations

import random
import re
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task

NAMES = ["Alice", "Bob", "Charlie", "Diana", "Ethan", "Fiona", "George", "Hannah", "Ian",
         "Julia", "Kevin", "Laura", "Mike", "Nina", "Oscar", "Penny", "Quincy", "Rachel",
         "Steve", "Tina", "Victoria", "William", "Yuri", "Zoe", "Adam", "Bella", "Carl",
         "Donna", "Erik", "Felicia", "Grace", "Henry", "Ivy", "Jack", "Leo", "Megan"]
COLORS = ["red", "blue", "green", "yellow", "purple", "black", "white", "orange", "pink",
          "brown", "gray", "cyan", "golden", "silver", "beige", "peach", "lime", "magenta",
          "navy", "mint", "olive", "maroon", "violet", "amber", "azure", "coral", "indigo"]
CATEGORIES = ["book", "watch", "headphones", "pen", "cup", "backpack", "phone", "laptop",
              "camera", "keyboard", "mouse", "hat", "glasses", "necklace", "bracelet", "ring",
              "scarf", "gloves", "umbrella", "toy", "flowerpot", "box", "wallet", "map",
              "frame", "lamp", "statue", "pillow", "blanket", "perfume", "fan", "badge",
              "whistle", "coin", "bookmark", "compass", "notebook", "kettle", "guitar", "doll"]
TEMPLATES = {
    "op1": "{n1} and {n2} swapped their items",
    "op2": "The owners of {o1} and {o2} exchanged these items",
    "op3": "The person who had {o1} exchanged items with {n1}",
    "op4": "{n1} traded {o1} for {o2}",
    "op5": "{n1} gave {o1} to {n2}, and {n2} gave {o2} to {n1}",
    "op6": "{n1} exchanged {o1} with {n2}'s {o2}",
    "op7": "The person who owned {o1} and the person who owned {o2} swapped their items",
    "op11": "{n1} initiated an exchange with the owner of {o1}",
    "op13": "{n1}, {n2}, and {n3} did a three-way exchange where {n1} gave to {n2}, {n2} gave "
            "to {n3}, and {n3} gave to {n1}",
}
PROMPT = ("There are {n} people: {names}, and {n} items: {objects}, each item being unique and "
          "singular.\nBefore any exchanges, the ownership of items was as follows:\n{before}"
          "\nThrough a series of {z} exchanges:\n{ops}\ndetermine the final ownership "
          "relationship between people and items.")

Exchange = list  # [kind, names..., objects...] as drawn


def replay(owns: dict[str, str], ops: list[Exchange]) -> dict[str, str]:
    """The final owner -> item after the exchanges (each a swap between owners, or a
    three-way rotation)."""
    owns = dict(owns)
    for op in ops:
        holder = {item: person for person, item in owns.items()}
        kind = op[0]
        if kind == "op13":
            a, b, c = op[1:4]
            owns[a], owns[b], owns[c] = owns[c], owns[a], owns[b]
            continue
        if kind in ("op1", "op5", "op6"):
            a, b = op[1], op[2]
        elif kind in ("op2", "op7"):
            a, b = holder[op[1]], holder[op[2]]
        elif kind in ("op3", "op11"):
            a, b = holder[op[1]], op[2]
        else:  # op4: [op4, name, own item, wanted item]
            a, b = op[1], holder[op[3]]
        owns[a], owns[b] = owns[b], owns[a]
    return owns


def _draw(rng: random.Random, kind: str, names: list[str], objects: list[str],
          owns: dict[str, str]) -> tuple[Exchange, str]:
    """One exchange of ``kind`` on the current ownership, and its sentence."""
    holder = {item: person for person, item in owns.items()}
    if kind == "op13" and len(names) < 3:
        kind = "op1"
    if kind in ("op1", "op5", "op6", "op13"):
        people = rng.sample(names, 3 if kind == "op13" else 2)
        text = TEMPLATES[kind].format(n1=people[0], n2=people[1], n3=people[-1],
                                      o1=f"the {owns[people[0]]}",
                                      o2=f"the {owns[people[1]]}" if kind == "op5"
                                      else owns[people[1]])
        return [kind, *people], text
    if kind in ("op2", "op7"):
        o1, o2 = rng.sample(objects, 2)
        return [kind, o1, o2], TEMPLATES[kind].format(o1=f"the {o1}", o2=f"the {o2}")
    if kind in ("op3", "op11"):
        o1 = rng.choice(objects)
        n1 = rng.choice([p for p in names if p != holder[o1]])
        return [kind, o1, n1], TEMPLATES[kind].format(o1=f"the {o1}", n1=n1)
    n1 = rng.choice(names)  # op4
    o2 = rng.choice([o for o in objects if o != owns[n1]])
    return ["op4", n1, owns[n1], o2], TEMPLATES["op4"].format(n1=n1, o1=f"the {owns[n1]}",
                                                              o2=f"the {o2}")


@register_task
class GoodsExchange(LogicTask):
    name = "goods_exchange"
    synlogic = "games/tasks/goods_exchange/scripts/goods_exchange.py"
    description = "who owns which item after a series of swaps"
    answer_format = "a Python tuple of (person, item) pairs, e.g. (('Alice','red book'),('Bob'," \
                    "'blue watch'))"
    # The authors' knobs: num_people, operator_num.
    levels = {1: {"num_people": 3, "operator_num": 3}, 2: {"num_people": 4, "operator_num": 5},
              3: {"num_people": 5, "operator_num": 8}, 4: {"num_people": 6, "operator_num": 12},
              5: {"num_people": 8, "operator_num": 18}}

    def generate(self, rng: random.Random, num_people: int = 5,
                 operator_num: int = 3) -> dict[str, Any]:
        if not 2 <= num_people <= len(NAMES) or operator_num < 1:
            raise ValueError("num_people must be 2-36 and operator_num >= 1")
        names = rng.sample(NAMES, num_people)
        colors = rng.sample(COLORS, min(len(COLORS), num_people + rng.randint(0, 2)))
        cats = rng.sample(CATEGORIES, min(len(CATEGORIES), num_people + rng.randint(0, 2)))
        objects: list[str] = []
        while len(objects) < num_people:  # the authors' redraw of a repeated item
            obj = f"{rng.choice(colors)} {rng.choice(cats)}"
            if obj not in objects:
                objects.append(obj)
        before = dict(zip(names, rng.sample(objects, num_people), strict=True))
        owns, ops, lines = dict(before), [], []
        for _ in range(operator_num):
            op, text = _draw(rng, rng.choice(list(TEMPLATES)), names, objects, owns)
            ops.append(op)
            lines.append(text)
            owns = replay(owns, [op])
        question = PROMPT.format(n=num_people, names=", ".join(names), objects=", ".join(objects),
                                 before=".\n".join(f"{p} owned the {o}" for p, o in
                                                   before.items()) + ".",
                                 z=len(ops), ops="\n".join(lines))
        answer = "(" + ",".join(f"('{p}','{o}')" for p, o in owns.items()) + ")"
        return {"question": question, "answer": answer, "before": before, "exchanges": ops,
                "num_people": num_people}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        pairs = re.findall(r"\(\s*['\"]([^'\"]+)['\"]\s*,\s*['\"]([^'\"]+)['\"]\s*\)", candidate)
        got: dict[str, str] = {}
        for person, obj in pairs:
            if person in got:
                return f"{person} is listed twice"
            got[person.strip()] = obj.strip().lower()
        want = replay(item["before"], item["exchanges"])
        if set(got) != set(want):
            return "not one pair per person"
        wrong = [p for p in want if got[p] != want[p].lower()]
        return f"wrong item for {', '.join(wrong)}" if wrong else None
