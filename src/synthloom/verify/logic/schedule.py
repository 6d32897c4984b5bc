"""SynLogic's ``time_sequence``, after games/tasks/time_sequence: find the longest meeting n
people can all attend this week (9:00-17:00, starting on the hour or half hour) and how many
start times allow it.

The day is 96 five-minute slots. Each person has, per weekday, a list of times given either as
*booked* or as the only *free* times; some carry one of the authors' ten extra rules. The
answer ``[longest minutes, number of options]`` is recomputed from the stored schedules and
rules by the authors' ``cal_answers``: every half-hour start that is free for all, the free run
from it (capped by the rules' longest-meeting limit), the longest such run and how many starts
reach it. Departures, each to keep the data true:

* the question says what an *option* is (a start time on the hour or half hour at which a
  meeting of the longest duration fits) and that meetings start on the hour or half hour; the
  authors' prompt leaves both to be guessed from their code;
* the time-zone rule ("one hour ahead of the others") moves that person's local schedule one
  hour earlier into the others' time and blocks their 16:00-17:00 (the authors only block
  16:00-17:00, leaving the person's own booked times unshifted);
* a puzzle with no common free time is redrawn (the authors keep ``[0, 0]``);
* English only (the authors draw Chinese or English per item).
"""

from __future__ import annotations

import itertools
import random
import re
from typing import Any

from synthloom.verify.logic.base import LogicTask, register_task

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
SLOTS = 96  # 9:00-17:00 in five-minute slots
NAMES = ["Kaitlyn", "Gerald", "Jocelyn", "Sara", "Edwin", "Savannah", "Brian", "Angela",
         "Albert", "Sean", "Walter", "Bailey", "Helen", "Sierra", "Henry", "Wayne", "Kayla",
         "Janice", "Timothy", "Tyler", "Cindy", "Julie", "Robert", "Chelsea", "Joan", "Raymond",
         "Tammy", "Kristen", "Ashley", "Thomas", "Rose", "Rebecca", "Sophia", "Juan", "Eric"]
#: The authors' ten rules (their English wording), keyed by a short name.
RULES = {
    "free_before": " requires at least 10 minutes of free time before a meeting, and the free "
                   "time must be between 9:00 AM and 5:00 PM.",
    "free_after": " requires at least 10 minutes of free time after a meeting, and the free "
                  "time must be between 9:00 AM and 5:00 PM.",
    "end_by_four": " feels tired and requires meetings to end before 4:00 PM.",
    "wednesday_lunch": " needs to have lunch between 12:30 PM and 1:00 PM on Wednesdays.",
    "cancel_morning": " can cancel the schedule between 9:00 AM and 9:45 AM each day (only "
                      "those ending before 9:45 AM can be cancelled).",
    "time_zone": " is in a time zone that is one hour ahead of others.",
    "tue_thu_short": " prefers to hold short meetings on Tuesdays and Thursdays and only "
                     "accepts new meetings on these two days, with a maximum duration of 1 "
                     "hour.",
    "drop_30": " can remove any meetings of 30 minutes or less from the schedule.",
    "drop_10": " can be flexible and miss up to 10 minutes of a meeting.",
    "tue_fri_long": " prefers to hold long meetings on Tuesdays and Fridays and only accepts "
                    "new meetings on these two days, but the meeting duration must not exceed "
                    "30 minutes.",
}
FREE_WORDS = ["only available at the following times: ", "free at the following times: ",
              "unavailable except for the following times: "]
BOOKED_WORDS = ["already booked the following times: ",
                "schedule is occupied at the following times: ",
                "cannot schedule meetings at the following times: "]

Day = list  # [kind ("free" | "booked"), [[start, end], ...]] in slots
_GAP = list(itertools.accumulate(1 / (i + 5) for i in range(36)))  # cumulative weights
_LENGTH = list(itertools.accumulate(1 / (i + 3) for i in range(24)))  # (same draws, faster)


def _day(rng: random.Random) -> list[list[int]]:
    """The authors' ``generate_day_schedule``: 2-5 intervals, gaps and lengths drawn with
    weights 1/(i+5) and 1/(i+3)."""
    out: list[list[int]] = []
    end = 0
    for _ in range(rng.choice([2, 3, 4, 5])):
        start = end + rng.choices(range(36), cum_weights=_GAP)[0]
        length = rng.choices(range(1, 25), cum_weights=_LENGTH)[0]
        if start + length > SLOTS:
            break
        out.append([start, start + length])
        end = start + length
    return out


def _booked(day: Day) -> list[list[int]]:
    """A day's booked intervals (free lists turned into their complement, as the authors)."""
    kind, spans = day
    if kind == "booked":
        return [list(s) for s in spans]
    out, start = [], 0
    for s, e in spans:
        out.append([start, s])
        start = e
    out.append([start, SLOTS])
    return out


def _with_rule(week: list[list[list[int]]], rule: str) -> list[list[list[int]]]:
    """The authors' ``change_schedule``: the rule as changes to the booked intervals."""
    if rule == "free_before":
        return [[[s, e + 2] for s, e in day] for day in week]
    if rule == "free_after":
        return [[[s - 2, e] for s, e in day] for day in week]
    if rule == "wednesday_lunch":
        return [day + [[42, 48]] if d == 2 else day for d, day in enumerate(week)]
    if rule == "end_by_four":
        return [day + [[84, SLOTS]] for day in week]
    if rule == "time_zone":  # their local hour h is our h-1 (see the module docstring)
        return [[[s - 12, e - 12] for s, e in day] + [[84, SLOTS]] for day in week]
    if rule == "cancel_morning":
        return [[[s, e] for s, e in day if not (s < 9 and e <= 9)] for day in week]
    if rule in ("drop_30", "drop_10"):
        most = 6 if rule == "drop_30" else 2
        return [[[s, e] for s, e in day if e - s > most] for day in week]
    if rule in ("tue_thu_short", "tue_fri_long"):
        closed = (0, 2, 4) if rule == "tue_thu_short" else (0, 2, 3)
        return [day + [[0, SLOTS]] if d in closed else day for d, day in enumerate(week)]
    return week


def solve(schedules: dict[str, list[Day]], rules: dict[str, str]) -> tuple[int, int]:
    """(longest meeting in minutes, number of half-hour starts that reach it): the authors'
    ``cal_answers`` with their ``cal_maxLen_time`` cap."""
    busy = [0] * len(DAYS)  # a bit per five-minute slot
    for name, week in schedules.items():
        for d, spans in enumerate(_with_rule([_booked(day) for day in week], rules.get(name, ""))):
            for s, e in spans:
                s, e = max(0, s), min(e, SLOTS)
                if e > s:
                    busy[d] |= ((1 << (e - s)) - 1) << s
    cap = 480
    for rule in rules.values():
        cap = min(cap, {"tue_thu_short": 60, "tue_fri_long": 30}.get(rule, 480))
    runs = []
    for day in busy:
        day |= 1 << SLOTS  # the end of the day stops every run
        for start in range(0, SLOTS, 6):
            rest = day >> start
            free = (rest & -rest).bit_length() - 1  # free slots from ``start`` on
            if free:
                runs.append(min(free * 5, cap))
    longest = max(runs, default=0)
    return longest, (runs.count(longest) if longest else 0)


def _clock(slot: int) -> str:
    return f"{9 + slot * 5 // 60:02}:{slot * 5 % 60:02}"


@register_task
class TimeSequence(LogicTask):
    name = "time_sequence"
    synlogic = "games/tasks/time_sequence/scripts/time_sequence.py"
    description = "the longest meeting everyone can attend this week, and how many start times"
    answer_format = "[longest meeting in minutes, number of options], e.g. [45, 3]"
    # n people; rule_prob: percent chance that a person has one extra rule (the authors' knobs)
    levels = {1: {"n": 2, "rule_prob": 0}, 2: {"n": 3, "rule_prob": 30},
              3: {"n": 3, "rule_prob": 60}, 4: {"n": 4, "rule_prob": 80},
              5: {"n": 5, "rule_prob": 100}}

    def generate(self, rng: random.Random, n: int = 3, rule_prob: int = 50) -> dict[str, Any]:
        if not 2 <= n <= len(NAMES) or not 0 <= rule_prob <= 100:
            raise ValueError("n must be 2-35 and rule_prob 0-100")
        while True:
            names = rng.sample(NAMES, n)
            schedules = {p: [[rng.choice(["free", "booked"]), _day(rng)] for _ in DAYS]
                         for p in names}
            rules = {p: rng.choice(list(RULES)) for p in names if rng.random() * 100 < rule_prob}
            longest, options = solve(schedules, rules)
            if longest:
                break
        lines = [f"{', '.join(names[:-1])} and {names[-1]} work from 9 to 5 their local time "
                 "on weekdays. They want to have a meeting some time this week."]
        for p in names:
            days = []
            for d, (kind, spans) in enumerate(schedules[p]):
                words = rng.choice(FREE_WORDS if kind == "free" else BOOKED_WORDS)
                times = ", ".join(f"{_clock(s)} - {_clock(e)}" for s, e in spans) or "none"
                days.append(f"{DAYS[d]}: {words}{times}")
            lines.append(f"The schedule for {p}'s week in their local time is as follows:\n" +
                         "\n".join(days))
        lines += [f"{p}{RULES[r]}" for p, r in rules.items()]
        question = ("\n\n".join(lines) + "\n\nMeetings start on the hour or half hour. Find "
                    "the longest meeting (in minutes) that everyone can attend, and the number "
                    "of options: the start times (a day and an hour or half hour) at which a "
                    "meeting of that length fits.\nPut the maximum duration and the number of "
                    "options, in that order, in [ ] at the end of your answer, like this: "
                    "[45, 3]")
        return {"question": question, "answer": f"[{longest}, {options}]",
                "schedules": schedules, "rules": rules, "people": n}

    def verify(self, item: dict[str, Any], candidate: str) -> str | None:
        lists = re.findall(r"\[([^\[\]]*)\]", candidate)  # the authors read the last [...]
        text = lists[-1] if lists else candidate
        got = re.findall(r"-?\d+", text)
        if len(got) != 2 or re.sub(r"[-\d\s,，]", "", text):
            return "not a list of two integers"
        longest, options = solve(item["schedules"], item["rules"])
        if int(got[0]) != longest:
            return "wrong longest duration"
        return None if int(got[1]) == options else "wrong number of options"
