"""One run per output folder: an exclusive ``flock`` on OUT/.lock, held for the run's lifetime.

Why: two runs on one folder would interleave writes to the same run store and JSONL files.
Why flock: taking it is one atomic kernel operation, so of several processes that start at once
exactly one wins (the old create-exclusive + "is the pid alive?" + unlink-and-retake dance let
two or three win, most often over a stale file). The kernel drops the lock when its holder dies,
so a file left by a killed run is simply taken: there is no stale-lock takeover to race on.
The file is never deleted (deleting it would let a second process lock a fresh inode while a
first still holds the old one); it holds the holder's pid, for messages only.

``held_by(run_dir)`` tells export/report whether a live process holds a folder's lock, without
creating the file.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from synthloom.core.errors import SynthloomError

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"


class RunLockedError(SynthloomError):
    """Another live process holds the output folder's lock."""


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def held_by(run_dir: str | Path) -> int | None:
    """The pid (0 when unknown) of the live process holding ``run_dir``'s lock, else None.
    Reads only: a folder without a lock file is not held."""
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class RunLock:
    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            who = f"pid {pid}" if pid else "pid not yet written"
            raise RunLockedError(
                f"output folder {self.path.parent} is in use by another run "
                f"({who}, lock {self.path}); wait for it or use another --out") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # no pid left behind once the run is over
        finally:
            os.close(fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
