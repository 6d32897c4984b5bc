"""Stateful toy environments (store, bank, calendar) with policies and inspectable state."""

from synthloom.tools.envs.bank import Bank
from synthloom.tools.envs.base import StatefulEnvironment, tool
from synthloom.tools.envs.calendar import Calendar
from synthloom.tools.envs.store import Store

ENVIRONMENTS: dict[str, type[StatefulEnvironment]] = {
    "store": Store, "bank": Bank, "calendar": Calendar}

__all__ = ["ENVIRONMENTS", "Bank", "Calendar", "StatefulEnvironment", "Store", "tool"]
