"""SynLogic's ``object_counting``, after games/tasks/object_counting: a shuffled list of what I
and my relatives own (some of my counts told as a story of gains and losses); how many things
of one or two categories do I have (a total, a sum, or an absolute difference)?

The generator follows the authors' ``generate_problem``: 3-7 of their seven categories, 2-5 of
my items per category with counts 5-100, 25-40 possessions of the others as distractors, each
of my items told plainly (40%), with a remark (40%) or as a story of 3-6 counts ending at it
(20%); the question is a sum of two categories, their absolute difference, or one total (each
1 in 3). The verifier recomputes the number from my stored items and the question's spec.
Departures: English only; the answer is read by the shared reader (the authors read only
``\\boxed{}``).
"""

from __future__ import annotations

import itertools
import random
import re
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task

PEOPLE = ["My aunt", "My uncle", "My brother", "My sister", "My mother", "My father",
          "My grandmother", "My grandfather", "My cousin", "My friend", "My colleague",
          "My neighbor", "My teacher", "My professor", "My roommate", "My boss"]
CATEGORIES = {
    "fruits": ["apples", "bananas", "oranges", "grapes", "strawberries", "watermelons",
               "pineapples", "mangoes", "kiwis", "peaches", "plums", "cherries", "breadfruits",
               "nectarines", "apricots", "lemons", "guavas", "dates", "plantains",
               "persimmons", "pomegranates", "raspberries", "blueberries", "blackberries"],
    "animals": ["dogs", "cats", "birds", "hamsters", "rabbits", "turtles", "fish", "snakes",
                "lizards", "frogs", "monkeys", "opossums", "wolves", "beavers", "falcons",
                "ducks", "parrots", "hedgehogs", "ferrets", "chinchillas", "guinea pigs"],
    "cars": ["toyota corolla", "honda civic", "ford mustang", "tesla model 3", "nissan altima",
             "chevrolet camaro", "hyundai elantra", "mazda cx-5", "kia niro", "jeep gladiator",
             "bmw x5", "audi a4", "lexus rx", "volvo xc90", "subaru outback", "porsche 911"],
    "electronics": ["smartphones", "laptops", "tablets", "smartwatches", "headphones",
                    "bluetooth speakers", "digital cameras", "video game consoles", "drones",
                    "e-readers", "smart TVs", "VR headsets", "monitors", "routers"],
    "books": ["mystery novels", "sci-fi books", "fantasy books", "history books", "biographies",
              "cookbooks", "self-help books", "poetry collections", "graphic novels",
              "textbooks", "encyclopedias", "travel guides", "comics", "magazines"],
    "furniture items": ["chairs", "tables", "sofas", "bookshelves", "desks", "beds",
                        "nightstands", "dressers", "ottomans", "bean bags", "benches",
                        "armchairs", "recliners", "stools"],
    "clothing items": ["t-shirts", "jeans", "dresses", "sweaters", "jackets", "hoodies",
                       "skirts", "shorts", "suits", "ties", "scarves", "hats", "gloves", "socks",
                       "coats", "pajamas", "swimsuits"],
}
REMARKS = ["(which I recently acquired)", "(which are quite useful)", "(which I keep at home)",
           "(which I like very much)", "(which are valuable to me)", "(happy to have them)",
           "(I bought them yesterday)", "(they were a birthday gift)"]
PROMPT = ("Below is an object counting problem. Please read carefully and solve it.\n\n"
          "{context}\n\n{problem}\n\nPlease calculate carefully and provide the exact answer.")


def _story(rng: random.Random, count: int, low: int, high: int) -> str:
    """The authors' complex story: 3-6 counts, no two in a row equal, the last ``count``."""
    seq = [rng.randint(low, high)]
    for _ in range(rng.randint(3, 6) - 2):
        value = rng.randint(low, high)
        while value == seq[-1]:
            value = rng.randint(low, high)
        seq.append(value)
    seq.append(count)
    text = f"(here's how I ended up with {count} of them: initially I had {seq[0]}"
    for before, after in itertools.pairwise(seq):
        if after > before:
            text += f", then I got {after - before} more making it {after}"
        elif after < before:
            text += f", then I lost {before - after} of them leaving me with {after}"
    return text + ")"


def count_of(mine: dict[str, list[list[Any]]], asked: list[str]) -> int:
    """The answer: ``["total", c]``, ``["sum", c1, c2]`` or ``["difference", c1, c2]``."""
    totals = [sum(int(n) for _, n in mine[c]) for c in asked[1:]]
    if asked[0] == "total":
        return totals[0]
    return totals[0] + totals[1] if asked[0] == "sum" else abs(totals[0] - totals[1])


@register_task
class ObjectCounting(LogicTask):
    name = "object_counting"
    synlogic = "games/tasks/object_counting/scripts/object_counting.py"
    description = "count my things of a category among everyone's, through stories of changes"
    answer_format = "one integer"
    # The authors' knobs (their defaults are level 5's; their sweep runs min_count 5-60,
    # categories 3-6, my items 2-6).
    levels = {
        1: {"max_count": 20, "categories": (3, 3), "my_items": (1, 2), "others": (5, 10),
            "story_probs": (0.6, 0.4, 0.0)},
        2: {"max_count": 40, "categories": (3, 4), "my_items": (2, 3), "others": (10, 20),
            "story_probs": (0.5, 0.4, 0.1)},
        3: {"max_count": 60, "categories": (3, 5), "my_items": (2, 4), "others": (15, 30),
            "story_probs": (0.4, 0.4, 0.2)},
        4: {"max_count": 100, "categories": (4, 6), "my_items": (2, 5), "others": (20, 35),
            "story_probs": (0.4, 0.4, 0.2)},
        5: {"max_count": 100, "categories": (3, 7), "my_items": (2, 5), "others": (25, 40),
            "story_probs": (0.3, 0.3, 0.4)}}

    def generate(self, rng: random.Random, max_count: int = 100,
                 categories: tuple[int, int] = (3, 7), my_items: tuple[int, int] = (2, 5),
                 others: tuple[int, int] = (25, 40), min_count: int = 5,
                 story_probs: tuple[float, float, float] = (0.4, 0.4, 0.2)) -> dict[str, Any]:
        if not 1 <= categories[0] <= categories[1] <= len(CATEGORIES) or min_count > max_count:
            raise ValueError("categories must lie in 1-7 and min_count <= max_count")
        used = rng.sample(list(CATEGORIES), rng.randint(*categories))
        mine: dict[str, list[list[Any]]] = {c: [] for c in used}
        lines: list[tuple[str, str, int, str]] = []
        for cat in used:
            for item in rng.sample(CATEGORIES[cat], min(rng.randint(*my_items),
                                                        len(CATEGORIES[cat]))):
                count = rng.randint(min_count, max_count)
                roll = rng.random()
                note = "" if roll < story_probs[0] else " " + (
                    rng.choice(REMARKS) if roll < story_probs[0] + story_probs[1]
                    else _story(rng, count, min_count, max_count))
                mine[cat].append([item, count])
                lines.append(("I", item, count, note))
        held: dict[str, set[str]] = {}
        for _ in range(rng.randint(*others)):
            cat, person = rng.choice(used), rng.choice(PEOPLE)
            taken = held.setdefault(f"{person}/{cat}", set())
            free = [i for i in CATEGORIES[cat] if i not in taken]
            if free:
                item = rng.choice(free)
                taken.add(item)
                lines.append((person, item, rng.randint(min_count, max_count), ""))
        rng.shuffle(lines)
        said: set[str] = set()
        text = []
        for person, item, count, note in lines:
            also = " also" if person in said else ""
            verb = "have" if person == "I" else "has"
            text.append(f"{person}{also} {verb} {count} {item}{note}.")
            said.add(person)
        kind = rng.randint(1, 3) if len(used) >= 2 else 3
        if kind <= 2:
            a, b = rng.sample(used, 2)
            asked = ["sum" if kind == 1 else "difference", a, b]
            problem = (f"What is the total number of {a} and {b} that I have?" if kind == 1 else
                       f"What is the absolute difference between the number of {a} and {b} "
                       "that I have?")
        else:
            asked = ["total", rng.choice(used)]
            problem = f"How many {asked[1]} do I have in total?"
        return {"question": PROMPT.format(context=" ".join(text), problem=problem),
                "answer": str(count_of(mine, asked)), "mine": mine, "asked": asked,
                "categories": len(used), "statements": len(lines)}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        got = candidate.strip().rstrip(".").replace(",", "")
        if not re.fullmatch(r"-?\d+", got):
            return "not one integer"
        want = count_of(item["mine"], item["asked"])
        return None if int(got) == want else f"wrong count {got}"
