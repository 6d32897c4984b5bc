"""Where a run's failed and dropped items go: one interface, two homes.

The local executor writes ``failed.jsonl`` / ``dropped.jsonl`` (as ``NAME.partial`` until the
run ends complete); a Ray actor keeps them as events that travel to the driver, which writes
them to its own file log. The batch runner (core/batch.py) only sees :class:`RunLog`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any, Protocol

from synthloom.core import jsonio
from synthloom.core.records import rid

LOG_FILES = ("failed.jsonl", "dropped.jsonl")


class RunLog(Protocol):
    def failed(self, record: dict[str, Any] | None, step: str, error_class: str, message: str,
               extra: dict[str, Any] | None = None) -> None: ...

    def dropped(self, record: dict[str, Any], step: str, reason: str) -> None: ...


def partial_path(path: Path) -> Path:
    """Where a run writes ``path`` until the run ends complete (``data.jsonl.partial``)."""
    return path.with_name(path.name + ".partial")


class FileRunLog:
    """``failed.jsonl`` and ``dropped.jsonl`` of a run folder, written as ``*.partial``."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._failed: IO[bytes] = open(partial_path(run_dir / "failed.jsonl"), "wb")  # noqa: SIM115
        self._dropped: IO[bytes] = open(partial_path(run_dir / "dropped.jsonl"), "wb")  # noqa: SIM115

    def failed(self, record: dict[str, Any] | None, step: str, error_class: str, message: str,
               extra: dict[str, Any] | None = None) -> None:
        if self._failed.closed:  # a task outliving an interrupted run: no output left
            return
        _write_line(self._failed, {"id": rid(record) if record else None, "step": step,
                                   "error_class": error_class, "message": message,
                                   **(extra or {}), "record": record})

    def dropped(self, record: dict[str, Any], step: str, reason: str) -> None:
        if self._dropped.closed:
            return
        _write_line(self._dropped,
                    {"id": rid(record), "step": step, "reason": reason, "record": record})

    def close(self) -> None:
        self._failed.close()
        self._dropped.close()

    def publish(self) -> None:
        """Move the run's logs over the previous run's (each an atomic rename)."""
        for name in LOG_FILES:
            os.replace(partial_path(self.run_dir / name), self.run_dir / name)


class EventLog:
    """The log of a process that writes no files (a Ray actor): ``(kind, event)`` pairs that
    the driver replays into its :class:`FileRunLog` with :func:`replay`."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def failed(self, record: dict[str, Any] | None, step: str, error_class: str, message: str,
               extra: dict[str, Any] | None = None) -> None:
        self.events.append(("failed", {"record": record, "step": step, "error_class": error_class,
                                       "message": message, **(extra or {})}))

    def dropped(self, record: dict[str, Any], step: str, reason: str) -> None:
        self.events.append(("dropped", {"record": record, "step": step, "reason": reason}))

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        events, self.events = self.events, []
        return events


def replay(log: RunLog, kind: str, event: dict[str, Any]) -> None:
    """Write one :class:`EventLog` event (``failed`` / ``dropped``) to ``log``."""
    event = dict(event)
    if kind == "failed":
        log.failed(event.pop("record"), event.pop("step"), event.pop("error_class"),
                   event.pop("message"), event)
    else:
        log.dropped(event["record"], event["step"], event["reason"])


def _write_line(handle: IO[bytes], row: dict[str, Any]) -> None:
    handle.write(jsonio.dumps_line(row))
    handle.flush()
