"""A toy calendar with a policy document: business hours, weekdays, no overlaps."""

from __future__ import annotations

import datetime as dt
from typing import Any

from synthloom.tools.base import ToolError
from synthloom.tools.envs.base import StatefulEnvironment, tool

POLICY = """Calendar policy:
1. Events are on weekdays (Monday to Friday) only.
2. Events lie within business hours, 09:00 to 17:00, and last 15 minutes to 4 hours.
3. Events may not overlap.
4. Only the events of the calendar's owner may be cancelled or moved."""


def _minutes(hhmm: str) -> int:
    try:
        hours, minutes = hhmm.split(":")
        value = int(hours) * 60 + int(minutes)
    except ValueError:
        raise ToolError(f"time {hhmm!r} is not HH:MM") from None
    return value


class Calendar(StatefulEnvironment):
    name = "calendar"
    policy = POLICY

    def initial_state(self) -> dict[str, Any]:
        return {"owner": "dana", "events": {
            "e1": {"title": "standup", "date": "2025-03-03", "start": "09:00", "end": "09:15",
                   "owner": "dana"},
            "e2": {"title": "review", "date": "2025-03-04", "start": "14:00", "end": "15:00",
                   "owner": "erik"}},
            "next_event": 3}

    def _check(self, date: str, start: str, end: str, skip: str | None = None) -> None:
        try:
            day = dt.date.fromisoformat(date)
        except ValueError:
            raise ToolError(f"date {date!r} is not YYYY-MM-DD") from None
        if day.weekday() >= 5:
            raise ToolError(f"policy 1: {date} is a weekend day")
        begin, finish = _minutes(start), _minutes(end)
        if begin < 9 * 60 or finish > 17 * 60 or not 15 <= finish - begin <= 240:
            raise ToolError(f"policy 2: {start}-{end} is outside business hours or too long")
        for eid, event in self.data["events"].items():
            if eid != skip and event["date"] == date and \
                    _minutes(event["start"]) < finish and begin < _minutes(event["end"]):
                raise ToolError(f"policy 3: overlaps {eid} ({event['title']})")

    def _owned(self, event_id: str) -> dict[str, Any]:
        event = self.data["events"].get(event_id)
        if event is None:
            raise ToolError(f"no event {event_id!r}")
        if event["owner"] != self.data["owner"]:
            raise ToolError(f"policy 4: {event_id} belongs to {event['owner']}")
        return event

    @tool
    def list_events(self, date: str) -> list[dict[str, Any]]:
        """The events on a day.

        Args:
            date: The day, YYYY-MM-DD.
        """
        return [{"id": eid, **e} for eid, e in sorted(self.data["events"].items())
                if e["date"] == date]

    @tool
    def create_event(self, title: str, date: str, start: str, end: str) -> dict[str, Any]:
        """Create an event for the owner.

        Args:
            title: What the event is.
            date: The day, YYYY-MM-DD.
            start: Start time, HH:MM.
            end: End time, HH:MM.
        """
        self._check(date, start, end)
        event_id = f"e{self.data['next_event']}"
        self.data["next_event"] += 1
        self.data["events"][event_id] = {"title": title, "date": date, "start": start,
                                         "end": end, "owner": self.data["owner"]}
        return {"id": event_id}

    @tool
    def cancel_event(self, event_id: str) -> dict[str, Any]:
        """Cancel one of the owner's events.

        Args:
            event_id: The event's id.
        """
        self._owned(event_id)
        del self.data["events"][event_id]
        return {"id": event_id, "cancelled": True}

    @tool
    def move_event(self, event_id: str, date: str, start: str, end: str) -> dict[str, Any]:
        """Move one of the owner's events.

        Args:
            event_id: The event's id.
            date: The new day, YYYY-MM-DD.
            start: New start time, HH:MM.
            end: New end time, HH:MM.
        """
        event = self._owned(event_id)
        self._check(date, start, end, skip=event_id)
        event.update(date=date, start=start, end=end)
        return {"id": event_id, **event}
