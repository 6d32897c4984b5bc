"""SynLogic's ``object_properties``, after games/tasks/object_properties: a collection of weird
items (size, color, origin, material, smell, name; one attribute told as runs, "the first
three were red, the next two were blue") goes through 2-3 changes by relatives ("my aunt
replaced...", "I lost all of the small items", ...); how many items now have one of 2-5 asked
attribute values, or "unknown" if that cannot be computed?

The generator follows the authors' ``describe_collection_changes`` with their ten changes,
their 30% "After this, my collection had: ..." material counts, and their question. Each change
is stored with its parameters and the verifier replays them from the initial collection.
Departures, each to keep the answer true to the text:

* the neighbour's trade gives items whose size and material are told and whose color, origin,
  smell and name are not: those are unknown here (the authors draw them at random and count
  them, so their answer depends on values the reader never sees). A later change that tests an
  unknown attribute makes the count unknown, and so does an asked attribute that is unknown on
  an item no other asked attribute settles: the answer is then "unknown", which the question
  offers (the authors' answer never is);
* the trade removes every item of that origin (the authors pop indices in ascending order, so
  after the first pop they remove the wrong items);
* the values a change or the question names are drawn from the sorted current values (the
  authors draw from a ``set``, whose order changes with the hash seed); English only.
"""

from __future__ import annotations

import random
import re
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task

ATTRS = ["sizes", "colors", "countries", "materials", "smells"]
POOLS = {
    "sizes": ["extra-extra-small", "extra-small", "small", "medium", "large", "extra-large",
              "extra-extra-large"],
    "countries": ["Turkish", "German", "French", "Italian", "Japanese", "Chinese", "Russian",
                  "British", "Polish", "Brazilian", "Mexican", "Canadian", "Afghan", "Iranian",
                  "Portuguese"],
    "materials": ["plastic", "glass", "steel", "ceramic", "concrete", "wood", "metal", "fabric",
                  "leather", "paper", "rubber", "diamond", "gold", "silver", "platinum",
                  "titanium"],
    "smells": ["wet dog", "baking bread", "pine needles", "burning wood", "garlic", "vinegar",
               "rose", "popcorn", "coconut", "vanilla", "coffee", "chocolate", "gasoline",
               "citrus fruits", "lavender", "leather"],
    "colors": ["beige", "black", "blue", "brown", "crimson", "cyan", "gold", "gray", "green",
               "indigo", "magenta", "maroon", "orange", "purple", "red", "silver", "teal",
               "turquoise", "violet", "white", "yellow"],
}
ITEMS = ["pen", "ball", "ruler", "hammer", "shoe", "bag", "bicycle", "screwdriver", "book",
         "umbrella", "key", "scissors", "fork", "speaker", "candle", "vase", "brush", "bird",
         "pencil", "drill", "lamp", "bottle", "house", "bowl", "sunglasses", "earring", "clock",
         "trash can", "plate", "chair"]
PEOPLE = ["my aunt", "my brother", "my sister", "my mom", "my fiance", "my cousin",
          "my neighbor"]
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
           "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
           "eighteen", "nineteen", "twenty"]
#: The authors' ten changes; ``{x}`` a current value, ``{new_x}`` another of the pool.
CHANGES = {
    "aunt": "Then, for each item of size {sizes} in my collection, {person} took it but then "
            "gave me another one of the same item made of her favorite material "
            "{new_materials} and with a smell of {new_smells} (all other properties the same).",
    "brother": "Then, {person} replaced any item of size {sizes} in my new collection with an "
               "exact copy but with size {new_sizes} and another exact copy but with color "
               "{new_colors}.",
    "sister": "Then, for any item made of {materials} in my new collection, {person} changed "
              "their color to {new_colors} and changed their smell to {new_smells}.",
    "mom": "Then, for any item of color {colors} in my new collection, {person} gave me another "
           "one of the same item, but with color {new_colors}, {new_countries} origin, "
           "{new_sizes} size, {new_smells} smell, and made of {new_materials}.",
    "fiance": "Then, {person} compared my new collection with my initial collection and if "
              "there was an item in my new collection with a (smell, color) pair that was "
              "different from all items in my initial collection, she added another copy of "
              "that to my new collection.",
    "lost": "Then, I lost all of the {sizes} items in my collection.",
    "cousin": "Then, {person} picked all {colors} item and changed its material to "
              "{new_materials}.",
    "neighbor": "Then, {person} traded me all items of {countries} origin for the same number "
                "of items with {new_sizes} size and {new_materials} material.",
    "twin": "Then, for every item with {smells} smell, I decided to add a twin item but with "
            "{new_colors} color instead.",
    "spill": "Then, I accidentally spilled paint on all my {sizes} items, changing their colors "
             "to {new_colors}.",
}
#: The attribute each change tests (an unknown value there makes the outcome unknown).
TESTS = {"aunt": ["sizes"], "brother": ["sizes"], "sister": ["materials"], "mom": ["colors"],
         "fiance": ["smells", "colors"], "lost": ["sizes"], "cousin": ["colors"],
         "neighbor": ["countries"], "twin": ["smells"], "spill": ["sizes"]}
PROMPT = ("You are given a tracking problem about a collection of items with various "
          "properties.\n{context}\n\nBased on the description above, answer the following "
          "question:\n{problem}\n\nProvide step-by-step reasoning to track all changes to the "
          "collection and count the items satisfying the specified conditions.")

Item = dict  # ATTRS + "name"; None where the text does not tell


def apply(kind: str, p: dict[str, str], items: list[Item], initial: list[Item]) -> list[Item]:
    """One change (the authors' ``*_transform``), on copies."""
    items = [dict(i) for i in items]
    if kind == "aunt":
        for i in items:
            if i["sizes"] == p["sizes"]:
                i["materials"], i["smells"] = p["new_materials"], p["new_smells"]
    elif kind == "brother":
        copies = [dict(i, colors=p["new_colors"]) for i in items if i["sizes"] == p["sizes"]]
        for i in items:
            if i["sizes"] == p["sizes"]:
                i["sizes"] = p["new_sizes"]
        items += copies
    elif kind == "sister":
        for i in items:
            if i["materials"] == p["materials"]:
                i["colors"], i["smells"] = p["new_colors"], p["new_smells"]
    elif kind == "mom":
        items += [dict(i, colors=p["new_colors"], countries=p["new_countries"],
                       sizes=p["new_sizes"], smells=p["new_smells"],
                       materials=p["new_materials"]) for i in items if i["colors"] == p["colors"]]
    elif kind == "fiance":
        seen = {(i["smells"], i["colors"]) for i in initial}
        items += [dict(i) for i in items if (i["smells"], i["colors"]) not in seen]
    elif kind == "lost":
        items = [i for i in items if i["sizes"] != p["sizes"]]
    elif kind == "cousin":
        for i in items:
            if i["colors"] == p["colors"]:
                i["materials"] = p["new_materials"]
    elif kind == "neighbor":
        gone = sum(i["countries"] == p["countries"] for i in items)
        items = [i for i in items if i["countries"] != p["countries"]]
        items += [{"sizes": p["new_sizes"], "colors": None, "countries": None,
                   "materials": p["new_materials"], "smells": None, "name": None}
                  for _ in range(gone)]
    elif kind == "twin":
        items += [dict(i, colors=p["new_colors"]) for i in items if i["smells"] == p["smells"]]
    elif kind == "spill":
        for i in items:
            if i["sizes"] == p["sizes"]:
                i["colors"] = p["new_colors"]
    return items


def outcome(initial: list[Item], changes: list[list[Any]], asked: dict[str, str]) -> str:
    """The answer: how many final items have any asked value, or "unknown"."""
    items = [dict(i) for i in initial]
    for kind, params in changes:
        if any(i[a] is None for i in items for a in TESTS[kind]):
            return "unknown"
        items = apply(kind, params, items, initial)
    count = 0
    for i in items:
        if any(i[a] == v for a, v in asked.items()):
            count += 1
        elif any(i[a] is None for a in asked):
            return "unknown"
    return str(count)


def _a(text: str) -> str:
    return ("an " if text[0] in "aeiou" else "a ") + text


def _describe(item: Item, special: str, rng: random.Random) -> str:
    words = []
    for attr in ATTRS:
        value = item[attr]
        if attr == special:
            continue
        if attr == "materials":
            words.append(f"made of {value}")
        elif attr == "smells":
            words.append(rng.choice([f"with a smell of {value}", f"smelled like {value}"]))
        elif attr == "countries":
            words.append(f"from {value}")
        else:
            words.append(value)
    return _a(" ".join(words + [item["name"]]))


def _values(items: list[Item], attr: str) -> list[str]:
    return sorted({i[attr] for i in items if i[attr] is not None}) or POOLS[attr]


@register_task
class ObjectProperties(LogicTask):
    name = "object_properties"
    synlogic = "games/tasks/object_properties/scripts/object_properties.py"
    description = "track a collection's items through changes and count those with given values"
    answer_format = "one integer, or unknown"
    # The authors' knobs: transformation_range, feature_num, num_range (their defaults are
    # level 3's).
    levels = {1: {"transformations": (1, 1), "feature_num": 4, "num_range": (5, 8)},
              2: {"transformations": (1, 2), "feature_num": 5, "num_range": (8, 10)},
              3: {"transformations": (2, 3), "feature_num": 7, "num_range": (10, 15)},
              4: {"transformations": (3, 4), "feature_num": 7, "num_range": (15, 20)},
              5: {"transformations": (4, 5), "feature_num": 7, "num_range": (20, 20)}}

    def generate(self, rng: random.Random, transformations: tuple[int, int] = (2, 3),
                 feature_num: int = 7, num_range: tuple[int, int] = (10, 15)) -> dict[str, Any]:
        if not feature_num >= 3 or not 3 <= num_range[0] <= num_range[1] <= 20 \
                or not 1 <= transformations[0] <= transformations[1] <= len(CHANGES):
            raise ValueError("feature_num >= 3, num_range within 3-20, transformations 1-10")
        pools = {a: rng.sample(POOLS[a], min(feature_num, len(POOLS[a]))) for a in ATTRS}
        count = rng.randint(*num_range)
        special = rng.choice(ATTRS)
        initial = [{**{a: rng.choice(pools[a]) for a in ATTRS if a != special},
                    "name": rng.choice(ITEMS)} for _ in range(count)]
        runs = rng.randint(3, min(feature_num, len(pools[special])))
        cuts = [0, *sorted(rng.sample(range(1, count), runs - 1)), count]
        values = rng.sample(pools[special], runs)
        for k in range(runs):
            for j in range(cuts[k], cuts[k + 1]):
                initial[j][special] = values[k]
        said = {"materials": "made of {}", "smells": "smelled like {}", "countries": "from {}"}
        parts = [f"{'the first' if k == 0 else 'the next'} {NUMBERS[cuts[k + 1] - cuts[k]]} "
                 f"{'was' if cuts[k + 1] - cuts[k] == 1 else 'were'} "
                 f"{said.get(special, '{}').format(values[k])}" for k in range(runs)]
        story = [f"I had a collection of {count} weird items that went through a few changes. "
                 "Initially, I had " + ", ".join(_describe(i, special, rng) for i in initial) +
                 ".", f"The {special.rstrip('s').replace('countrie', 'origin')} of the items "
                 "was respectively as follows: " + ", ".join(parts) + "."]
        items = [dict(i) for i in initial]
        changes = []
        known = True
        for kind in rng.sample(list(CHANGES), rng.randint(*transformations)):
            p = {a: rng.choice(_values(items, a)) for a in ATTRS}
            p.update({f"new_{a}": rng.choice([v for v in pools[a] if v != p[a]]) for a in ATTRS})
            changes.append([kind, {k: p[k] for k in sorted(p)}])
            story.append(CHANGES[kind].format(person=rng.choice(PEOPLE), **p))
            known = known and all(i[a] is not None for i in items for a in TESTS[kind])
            if known:  # past an unknown test the collection is not told any more
                items = apply(kind, p, items, initial)
            if rng.random() < 0.3 and known:
                tally: dict[str, int] = {}
                for i in items:
                    tally[i["materials"]] = tally.get(i["materials"], 0) + 1
                story.append("After this, my collection had: " + ", ".join(
                    f"{n} item(s) made of {m}" for m, n in tally.items()) + ".")
        chosen = rng.sample(ATTRS, rng.randint(2, 5))
        asked = {a: rng.choice(_values(items, a)) for a in chosen}
        said_q = {"sizes": "size is {}", "colors": "color is {}", "materials": "material is {}",
                  "smells": "smell is {}", "countries": "origin is {}"}
        problem = ("In my current collection, how many items have the following attributes: "
                   f"either {' or '.join(said_q[a].format(v) for a, v in asked.items())}? If "
                   "the exact number cannot be computed, the answer must be \"unknown\".")
        return {"question": PROMPT.format(context=" ".join(story), problem=problem),
                "answer": outcome(initial, changes, asked), "initial": initial,
                "changes": changes, "asked": asked, "items": count}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        got = candidate.strip().strip(".\"'").lower()
        if not re.fullmatch(r"\d+|unknown", got):
            return "not an integer or unknown"
        want = outcome(item["initial"], item["changes"], item["asked"])
        return None if got == want else f"{got} is not the count"
