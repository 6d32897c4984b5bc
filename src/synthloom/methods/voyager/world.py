"""A small crafting world for Voyager: Minecraft's tech tree without the 3-D world.

Standard library only: this file is copied into the sandbox as ``voyager_world.py`` and the
model's program runs against it there (``Bot`` + the control primitives below, the analogue of
the authors' ``control_primitives/*.js``). The step imports the same file in process only to
render observations and to check goals; model-written code never runs in process.

State (JSON): ``biome``, ``nearby`` (block -> count within reach), ``inventory`` (item ->
count), ``placed`` (blocks placed nearby, e.g. a crafting table), ``steps`` (exploration moves
so far, which seeds what exploring finds: the same state always gives the same world).
The primitives ``bot.chat`` their failures in the authors' words ("I cannot make stick
because I need: ...", "I need at least a wooden_pickaxe to mine stone!"), which the action
agent's chat-log summary reads back.
"""

from __future__ import annotations

import random
import re
from typing import Any

#: block -> (item it drops, tool needed or None).
BLOCKS: dict[str, tuple[str, str | None]] = {
    "log": ("log", None),
    "dirt": ("dirt", None),
    "sand": ("sand", None),
    "stone": ("cobblestone", "wooden_pickaxe"),
    "coal_ore": ("coal", "wooden_pickaxe"),
    "iron_ore": ("raw_iron", "stone_pickaxe"),
    "diamond_ore": ("diamond", "iron_pickaxe"),
}
#: Better tools mine whatever worse ones can.
TOOL_TIERS = ["wooden_pickaxe", "stone_pickaxe", "iron_pickaxe", "diamond_pickaxe"]
#: item -> (count made, ingredients, needs a crafting table nearby).
RECIPES: dict[str, tuple[int, dict[str, int], bool]] = {
    "planks": (4, {"log": 1}, False),
    "stick": (4, {"planks": 2}, False),
    "crafting_table": (1, {"planks": 4}, False),
    "wooden_pickaxe": (1, {"planks": 3, "stick": 2}, True),
    "wooden_sword": (1, {"planks": 2, "stick": 1}, True),
    "stone_pickaxe": (1, {"cobblestone": 3, "stick": 2}, True),
    "stone_sword": (1, {"cobblestone": 2, "stick": 1}, True),
    "furnace": (1, {"cobblestone": 8}, True),
    "torch": (4, {"coal": 1, "stick": 1}, False),
    "chest": (1, {"planks": 8}, True),
    "iron_pickaxe": (1, {"iron_ingot": 3, "stick": 2}, True),
    "iron_sword": (1, {"iron_ingot": 2, "stick": 1}, True),
    "bucket": (1, {"iron_ingot": 3}, True),
    "diamond_pickaxe": (1, {"diamond": 3, "stick": 2}, True),
}
#: raw item -> smelted item (needs a furnace nearby and one fuel per item).
SMELTING = {"raw_iron": "iron_ingot", "sand": "glass", "cobblestone": "smooth_stone"}
FUELS = ("coal", "planks", "log")
PLACEABLE = ("crafting_table", "furnace", "chest", "torch")
#: biome -> (weights of blocks exploring finds, blocks nearby at the start).
BIOMES: dict[str, tuple[dict[str, int], dict[str, int]]] = {
    "forest": ({"log": 6, "dirt": 3, "stone": 4, "coal_ore": 2, "iron_ore": 1, "sand": 1,
                "diamond_ore": 0}, {"log": 4, "dirt": 6}),
    "plains": ({"log": 2, "dirt": 6, "stone": 4, "coal_ore": 2, "iron_ore": 2, "sand": 2,
                "diamond_ore": 0}, {"dirt": 8, "log": 1}),
    "desert": ({"log": 1, "sand": 8, "stone": 4, "coal_ore": 1, "iron_ore": 1, "dirt": 1,
                "diamond_ore": 0}, {"sand": 10}),
    "mountains": ({"log": 2, "stone": 8, "coal_ore": 3, "iron_ore": 3, "dirt": 1, "sand": 0,
                   "diamond_ore": 1}, {"stone": 8, "log": 2}),
}
#: Blocks deep enough to need several exploration moves before they show up.
DEEP = {"iron_ore": 2, "diamond_ore": 5}
INVENTORY_SLOTS = 36


def initial_state(seed: int) -> dict[str, Any]:
    """A fresh world for one explorer: a biome drawn from ``seed``, an empty inventory."""
    rng = random.Random(f"voyager-world:{seed}")
    biome = sorted(BIOMES)[rng.randrange(len(BIOMES))]
    return {"biome": biome, "nearby": dict(BIOMES[biome][1]), "inventory": {}, "placed": [],
            "steps": 0, "seed": seed}


class Bot:
    """The agent's body: ``inventory`` and ``nearby`` (dicts), ``chat`` (the chat log)."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.biome = str(state["biome"])
        self.nearby: dict[str, int] = dict(state["nearby"])
        self.inventory: dict[str, int] = dict(state["inventory"])
        self.placed: list[str] = list(state["placed"])
        self.steps = int(state["steps"])
        self.seed = int(state.get("seed", 0))
        self.chat_log: list[str] = []

    def chat(self, message: Any) -> None:
        """Say something (the chat log is shown to the action agent next round)."""
        self.chat_log.append(str(message))

    def count(self, item: str) -> int:
        return int(self.inventory.get(item, 0))

    def state(self) -> dict[str, Any]:
        return {"biome": self.biome, "nearby": {k: v for k, v in sorted(self.nearby.items()) if v},
                "inventory": {k: v for k, v in sorted(self.inventory.items()) if v},
                "placed": list(self.placed), "steps": self.steps, "seed": self.seed}

    def _add(self, item: str, n: int) -> None:
        self.inventory[item] = self.count(item) + n

    def _take(self, item: str, n: int) -> None:
        left = self.count(item) - n
        if left:
            self.inventory[item] = left
        else:
            self.inventory.pop(item, None)


# --- control primitives (the authors' mineBlock, craftItem, smeltItem, placeItem, exploreUntil)


def _check_name(name: Any, known: Any, what: str) -> str:
    if not isinstance(name, str) or name not in known:
        raise ValueError(f"No {what} named {name!r}")
    return name


def explore_until(bot: Bot, block: str, max_steps: int = 10) -> bool:
    """Walk until ``block`` is nearby (at most ``max_steps`` moves; each move finds new
    blocks and leaves placed ones behind). True when found."""
    _check_name(block, BLOCKS, "block")
    for _ in range(max(0, min(int(max_steps), 60))):
        if bot.nearby.get(block, 0) > 0:
            return True
        bot.steps += 1
        rng = random.Random(f"voyager-explore:{bot.seed}:{bot.steps}")
        weights = {b: w for b, w in BIOMES[bot.biome][0].items()
                   if w and bot.steps >= DEEP.get(b, 0)}
        names = sorted(weights)
        found = rng.choices(names, [weights[n] for n in names], k=3)
        bot.nearby = {}
        for name in found:
            bot.nearby[name] = bot.nearby.get(name, 0) + rng.randint(2, 6)
        bot.placed = []
    found_it = bot.nearby.get(block, 0) > 0
    if not found_it:
        bot.chat(f"Explored {max_steps} steps and found no {block}")
    return found_it


def _has_tool(bot: Bot, tool: str | None) -> bool:
    if tool is None:
        return True
    return any(bot.count(t) for t in TOOL_TIERS[TOOL_TIERS.index(tool):])


def mine_block(bot: Bot, name: str, count: int = 1) -> int:
    """Mine up to ``count`` blocks of ``name`` nearby; returns how many were mined."""
    _check_name(name, BLOCKS, "block")
    drop, tool = BLOCKS[name]
    if not _has_tool(bot, tool):
        bot.chat(f"I need at least a {tool} to mine {name}!")
        return 0
    available = bot.nearby.get(name, 0)
    if available <= 0:
        bot.chat(f"No {name} nearby, please explore first")
        return 0
    mined = min(int(count), available)
    bot.nearby[name] = available - mined
    bot._add(drop, mined)
    if mined < count:
        bot.chat(f"Only {mined} {name} nearby; mined {mined}")
    return mined


def place_item(bot: Bot, name: str) -> bool:
    """Place one ``name`` from the inventory nearby (a crafting table, furnace, chest, torch)."""
    _check_name(name, PLACEABLE, "placeable item")
    if bot.count(name) < 1:
        bot.chat(f"No {name} in inventory")
        return False
    bot._take(name, 1)
    bot.placed.append(name)
    return True


def craft_item(bot: Bot, name: str, count: int = 1) -> bool:
    """Craft ``count`` times the recipe of ``name`` (each makes the recipe's count)."""
    _check_name(name, RECIPES, "recipe")
    made, needs, table = RECIPES[name]
    if table and "crafting_table" not in bot.placed:
        bot.chat(f"I cannot make {name} because there is no crafting table nearby")
        return False
    missing = {k: v * int(count) - bot.count(k) for k, v in needs.items()
               if bot.count(k) < v * int(count)}
    if missing:
        bot.chat(f"I cannot make {name} because I need: "
                 + ", ".join(f"{n} more {k}" for k, n in sorted(missing.items())))
        return False
    for k, v in needs.items():
        bot._take(k, v * int(count))
    bot._add(name, made * int(count))
    return True


def smelt_item(bot: Bot, name: str, fuel: str, count: int = 1) -> bool:
    """Smelt ``count`` of ``name`` with one ``fuel`` each, at a furnace nearby."""
    _check_name(name, SMELTING, "smeltable item")
    _check_name(fuel, FUELS, "fuel")
    if "furnace" not in bot.placed:
        bot.chat(f"I cannot smelt {name} because there is no furnace nearby")
        return False
    if bot.count(name) < int(count) or bot.count(fuel) < int(count):
        bot.chat(f"I cannot smelt {name} because I need: {count} {name} and {count} {fuel}")
        return False
    bot._take(name, int(count))
    bot._take(fuel, int(count))
    bot._add(SMELTING[name], int(count))
    return True


PRIMITIVES = ("explore_until", "mine_block", "place_item", "craft_item", "smelt_item")


# --- goals: the programmatic check where a task names an item and a count -----------------

_VERBS = ("mine", "collect", "gather", "obtain", "get", "chop", "craft", "make", "smelt",
          "cook", "place")
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
            "seven": 7, "eight": 8, "nine": 9, "ten": 10}
_ALIASES = {"wood": "log", "wood_log": "log", "oak_log": "log", "tree": "log", "wood_plank":
            "planks", "plank": "planks", "oak_planks": "planks", "wooden_plank": "planks",
            "cobblestone_block": "cobblestone", "iron": "iron_ingot", "ingot": "iron_ingot",
            "table": "crafting_table", "workbench": "crafting_table", "coal_ore": "coal",
            "iron_ore": "raw_iron", "diamond_ore": "diamond", "stone": "cobblestone"}
_GOAL = re.compile(r"^\s*(?P<verb>\w+)\s+(?:(?P<n>\d+|a|an|one|two|three|four|five|six|seven|"
                   r"eight|nine|ten)\s+)?(?P<what>[a-z _-]+?)\s*[.!]?\s*$", re.IGNORECASE)


def _item(words: str) -> str | None:
    name = re.sub(r"[\s-]+", "_", words.strip().lower())
    for candidate in (name, name.removesuffix("s"), name.removesuffix("es"),
                      name.removesuffix("es") + "e"):
        candidate = _ALIASES.get(candidate, candidate)
        if candidate in _KNOWN:
            return candidate
    return None


_KNOWN = ({d for d, _ in BLOCKS.values()} | set(RECIPES) | set(SMELTING.values())
          | set(SMELTING))


def goal_of(task: str) -> dict[str, Any] | None:
    """``{"kind": "have"|"placed", "item", "count"}`` for "Mine 3 logs", "Craft a furnace",
    "Place a crafting table"...; None when the task is not one of these forms."""
    match = _GOAL.match(task or "")
    if not match or match["verb"].lower() not in _VERBS:
        return None
    item = _item(match["what"])
    if item is None:
        return None
    verb = match["verb"].lower()
    if verb in ("smelt", "cook") and item in SMELTING:
        item = SMELTING[item]  # "Smelt 2 raw iron": the goal is the iron ingots
    n = match["n"] or "1"
    count = int(n) if n.isdigit() else _NUMBERS[n.lower()]
    kind = "placed" if verb == "place" else "have"
    return {"kind": kind, "item": item, "count": max(1, count)}


def check_goal(goal: dict[str, Any], before: dict[str, Any], after: dict[str, Any]
               ) -> tuple[bool, str]:
    """Whether the state after a program meets the goal: for items, at least ``count`` gained
    during the program (the inventory at the end minus the one at the start); for placing,
    at least ``count`` more of the block placed nearby."""
    item, count = goal["item"], int(goal["count"])
    if goal["kind"] == "placed":
        placed = after.get("placed", []).count(item) - before.get("placed", []).count(item)
        ok = placed >= count
        return ok, f"placed {max(placed, 0)} {item} nearby (needed {count})"
    gained = int(after["inventory"].get(item, 0)) - int(before["inventory"].get(item, 0))
    if gained >= count:
        return True, f"gained {gained} {item} (needed {count})"
    return False, f"gained {gained} {item}, the task needs {count}"


def describe(state: dict[str, Any]) -> dict[str, str]:
    """The observation lines the agents see (biome, nearby blocks, inventory ...)."""
    inventory = state.get("inventory") or {}
    return {
        "biome": str(state["biome"]),
        "nearby": ", ".join(f"{k} x{v}" for k, v in sorted((state.get("nearby") or {}).items())
                            if v) or "None",
        "placed": ", ".join(state.get("placed") or []) or "None",
        "inventory": (f"({len(inventory)}/{INVENTORY_SLOTS}): "
                      + (str(dict(sorted(inventory.items()))) if inventory else "Empty")),
        "steps": str(state.get("steps", 0)),
    }


def manual(item: str) -> str:
    """How to get ``item`` in this world (the context the authors' QA agent wrote from
    Minecraft knowledge; here the world's own recipe book answers)."""
    if item in RECIPES:
        made, needs, table = RECIPES[item]
        parts = ", ".join(f"{v} {k}" for k, v in needs.items())
        return (f"Craft {item} (makes {made}) from {parts}"
                + (" with a crafting table placed nearby." if table else "."))
    for raw, done in SMELTING.items():
        if done == item:
            return f"Smelt {raw} into {item} at a placed furnace, one fuel ({', '.join(FUELS)}) each."
    for block, (drop, tool) in BLOCKS.items():
        if drop == item:
            deep = f" It shows up after {DEEP[block]}+ exploration moves." if block in DEEP else ""
            return (f"Mine {block} to get {item}"
                    + (f"; needs a {tool} or better." if tool else ".") + deep)
    return ""
