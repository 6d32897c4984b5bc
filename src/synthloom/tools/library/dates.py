"""Date tools (self-contained: run in the sandbox from this source)."""

from __future__ import annotations

import datetime as dt


def days_between(start: str, end: str) -> int:
    """The number of days from one date to another (negative when end is earlier).

    Args:
        start: The first date, YYYY-MM-DD.
        end: The second date, YYYY-MM-DD.
    """
    return (dt.date.fromisoformat(end) - dt.date.fromisoformat(start)).days


def add_days(date: str, days: int) -> str:
    """The date a number of days after (or before, if negative) a date.

    Args:
        date: The date, YYYY-MM-DD.
        days: How many days to add.
    """
    return (dt.date.fromisoformat(date) + dt.timedelta(days=days)).isoformat()


def weekday(date: str) -> str:
    """The day of the week of a date, e.g. "Monday".

    Args:
        date: The date, YYYY-MM-DD.
    """
    return dt.date.fromisoformat(date).strftime("%A")
